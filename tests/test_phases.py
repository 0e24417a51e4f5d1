"""The phase interface: what the plan holds for a config, how the bench loops over it, and a
phase plugged in from outside reaching the report (findings, section, `show`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nccldoctor.config import ALL_PROBES, parse_args
from nccldoctor.phase import Phase
from nccldoctor.probes import PHASE_MODULES, plan
from nccldoctor.report import Report
from nccldoctor.reports.json_report import load
from nccldoctor.reports.sections import section_tables, views

HELPERS = Path(__file__).parent / "helpers"


def names(argv: list[str]) -> list[str]:
    return [phase.name for phase in plan(parse_args(argv))]


def test_default_plan_is_network_then_each_collective_then_the_rest_in_run_order():
    assert names([]) == ["network", "consistency", *ALL_PROBES, "health", "nccl_log", "ddp", "nic_sweep"]


def test_flags_choose_the_phases_and_the_collectives_keep_the_order_asked():
    assert names(["--probes", "sendrecv,all_reduce", "--health", "off", "--no-ddp"]) == [
        "network",
        "consistency",
        "sendrecv",
        "all_reduce",
        "nccl_log",
        "nic_sweep",
    ]
    assert "settings_sweep" in names(["--sweep", "GLOO_SOCKET_IFNAME=lo"])
    assert names(["--ddp-only"]) == ["network", "consistency", "nccl_log", "ddp", "nic_sweep"]


def test_every_planned_phase_implements_the_interface_and_only_network_and_consistency_run_before_init():
    phases = plan(parse_args(["--sweep", "GLOO_SOCKET_IFNAME=lo"]))
    assert all(isinstance(phase, Phase) for phase in phases)
    assert [p.name for p in phases if not p.needs_process_group] == ["network", "consistency"]
    assert len({p.name for p in phases}) == len(phases)
    assert len(PHASE_MODULES) == len(set(PHASE_MODULES))


def test_every_section_a_phase_writes_has_a_view():
    drawn = {v.section for v in views()}
    written = {"preflight", "network", "nccl", "nic_sweep", "settings_sweep", "ddp", "stragglers", "health"}
    written |= {"consistency", "speed"}
    assert written <= drawn


def test_a_saved_report_keeps_sections_it_has_no_view_for():
    report = Report(job={}, environment={}, results=[], findings=[], sections={"echo": {"seen": [1]}})
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.sections == {"echo": {"seen": [1]}}
    assert section_tables(again) == []  # nothing to draw, nothing lost


@pytest.mark.multiproc
def test_a_phase_plugged_in_through_the_plan_runs_in_order_and_reaches_the_report(tmp_path):
    out = tmp_path / "report"
    args = ["--out", str(out), "-e", "1K", "-n", "2", "-w", "1", "--probes", "all_reduce,broadcast"]
    proc = subprocess.run(
        [sys.executable, str(HELPERS / "extra_phase_bench.py"), *args, "--health", "off", "--no-ddp"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads((out / "report.json").read_text())
    assert proc.returncode == 0, proc.stderr[-2000:]
    # It ran after the network and consistency checks and both collectives, and saw all their rows.
    assert report["echo"] == {
        "seen": ["all_reduce", "broadcast", "consistency", "network"],
        "world_size": 1,
        "rows_so_far": len(report["results"]),
    }
    assert {row["probe"] for row in report["results"]} == {"all_reduce", "broadcast"}
    assert [f["code"] for f in report["findings"]] == ["probe_skipped"]
    assert load(out).sections["echo"] == report["echo"]  # `nccldoctor show` keeps it
