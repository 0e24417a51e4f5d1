"""The exclude list: only fail findings that point at a node (or its ranks or links) drain it;
job-wide findings, findings naming every node of a multi-node job, and warnings drain nobody."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rowmaker import make_row

from nccldoctor.analysis import low_bandwidth, wrong_data
from nccldoctor.commands.show import run as run_show
from nccldoctor.config import GateOptions
from nccldoctor.findings import Severity, make_finding
from nccldoctor.gate import review
from nccldoctor.gate.exclude import exclusions
from nccldoctor.probes.health.links import Link, judge_links
from nccldoctor.report import Report
from nccldoctor.reports import emit_all, make_sinks
from nccldoctor.reports.json_report import JsonSink, load
from nccldoctor.reports.markdown import render
from nccldoctor.reports.terminal import TerminalSink

FIXTURE = Path(__file__).parent / "fixtures" / "gate" / "two_nodes.json"  # a real 2 x 2 emulated run
FAIL = Severity.FAIL  # straggler_node warns by default; below the fail score it fails
HOSTS = ["gpu003", "gpu017", "gpu018", "gpu020"]
JOB = {"nodes": [{"node_rank": n, "hostname": h, "ranks": [2 * n, 2 * n + 1]} for n, h in enumerate(HOSTS)]}


def node_of_ranks(ranks):
    return sorted({r // 2 for r in ranks})


def hosts_of(*findings, job=JOB):
    return exclusions(job, findings)["hosts"]


def test_node_pointing_fail_findings_name_their_hosts_in_slurm_form():
    straggler = make_finding("straggler_node", "gpu017 is slow", nodes=[1], ranks=[2, 3], severity=FAIL)
    ecc = make_finding("gpu_ecc_errors", "node 2 GPU 0: 3 uncorrectable ECC errors", nodes=[2])
    blocked = make_finding("port_blocked", "node 0 does not accept connections", nodes=[0])
    section = exclusions(JOB, [straggler, ecc, blocked])
    assert section == {
        "hosts": ["gpu003", "gpu017", "gpu018"],
        "slurm": "gpu[003,017-018]",
        "reasons": {
            "gpu003": [{"code": "port_blocked", "message": blocked.message}],
            "gpu017": [{"code": "straggler_node", "message": straggler.message}],
            "gpu018": [{"code": "gpu_ecc_errors", "message": ecc.message}],
        },
    }


def test_ranks_alone_are_mapped_to_their_nodes_through_the_job():
    # explain's findings carry ranks only; the incomplete run's rank_crashed names its node
    crashed = make_finding("rank_crashed", "rank 7 failed in all_reduce 8M", ranks=[7])
    assert hosts_of(crashed) == ["gpu020"]
    (bad,) = wrong_data([make_row(wrong=4, wrong_ranks=[0, 1, 2, 3], wrong_sources=[5])], node_of_ranks)
    assert hosts_of(bad) == ["gpu018"]  # the sender of the wrong chunk, not every receiver


def test_job_wide_and_every_node_findings_drain_nobody():
    (slow,) = low_bandwidth([make_row(busbw_gbps=1.0)], {"all_reduce": 40.0})
    assert slow.nodes == slow.ranks == [] and hosts_of(slow) == []  # low bandwidth on the whole job
    config = make_finding("iface_missing", "NCCL_SOCKET_IFNAME=eth9 matches nothing")
    assert hosts_of(config) == []
    everywhere = make_finding("rank_timeout", "all_reduce never completed", ranks=range(8))
    assert hosts_of(everywhere) == []
    mtu = make_finding("version_mismatch", "torch differs", nodes=[0, 1, 2, 3])
    assert hosts_of(mtu) == []


def test_one_node_jobs_drain_their_node_and_warnings_drain_nobody():
    alone = {"nodes": [{"node_rank": 0, "hostname": "gpu003", "ranks": [0, 1]}]}
    ecc = make_finding("gpu_ecc_errors", "GPU 0: uncorrectable ECC", nodes=[0])
    assert hosts_of(ecc, job=alone) == ["gpu003"]
    warned = make_finding("straggler_node", "a bit slow", nodes=[1], severity=Severity.WARN)
    assert hosts_of(warned) == []
    assert hosts_of(make_finding("host_contention", "busy", nodes=[1])) == []  # warn by default


def test_slow_links_drain_the_node_they_share_or_both_ends_of_one_link():
    def link(src, dst, gbps):
        return Link("node_pair", src * 2, dst * 2, src, dst, gbps)

    healthy = [link(a, b, 10.0) for a in range(4) for b in range(4) if a != b and 1 not in (a, b)]
    via_node_1 = [link(1, b, 1.0) for b in (0, 2, 3)] + [link(a, 1, 1.0) for a in (0, 2, 3)]
    (node_finding,) = judge_links(healthy + via_node_1, {})
    assert node_finding.nodes == [1] and hosts_of(node_finding) == ["gpu017"]
    one_link = [link(a, b, 1.0 if (a, b) == (2, 3) else 10.0) for a in range(4) for b in range(4) if a != b]
    (link_finding,) = judge_links(one_link, {})
    assert hosts_of(link_finding) == ["gpu018", "gpu020"]  # which end is at fault is unknown
    two_nodes = {"nodes": JOB["nodes"][:2]}
    assert hosts_of(make_finding("slow_link", "0 -> 1", nodes=[0, 1], ranks=[0, 2]), job=two_nodes) == []


def test_the_reference_node_interrupted_runs_and_code_bugs_are_not_suspects():
    mismatch = make_finding("iface_mismatch", "no subnet shared between node 0 and node 2", nodes=[0, 2])
    assert hosts_of(mismatch) == ["gpu018"]
    signal = make_finding("run_interrupted", "stopped by SIGTERM on ranks 2, 3", ranks=[2, 3], nodes=[1])
    assert hosts_of(signal) == []
    shard = make_finding("sampler_overlap", "ranks 0 and 5 read the same items", ranks=[0, 5], nodes=[0, 2])
    assert hosts_of(shard) == []  # the training code's sampler, not a node


def test_review_adds_the_section_last_and_every_report_has_it(tmp_path):
    report = load(FIXTURE)
    assert "exclude" not in report.sections  # recorded before the gate existed
    review(report, GateOptions())
    assert report.sections["exclude"] == {"hosts": [], "slurm": "", "reasons": {}}
    report.findings.append(make_finding("straggler_node", "slow", nodes=[1], ranks=[2, 3], severity=FAIL))
    review(report, GateOptions())
    host = report.job["nodes"][1]["hostname"]
    assert report.sections["exclude"]["hosts"] == [host]
    JsonSink().emit(report, tmp_path)
    assert json.loads((tmp_path / "report.json").read_text())["exclude"]["slurm"] == host


def test_exclude_txt_terminal_and_markdown(tmp_path):
    from rich.console import Console

    report = Report(job=JOB, environment={}, results=[], findings=[])
    sinks = make_sinks()
    console = Console(record=True, width=200)
    sinks[-1] = TerminalSink(console=console)
    emit_all(report, tmp_path, sinks)
    assert (tmp_path / "exclude.txt").read_text() == ""  # there, and empty: a script can read it
    assert "exclude from" not in console.export_text()
    report.findings = [
        make_finding("straggler_node", "slow", nodes=[1], ranks=[2, 3], severity=FAIL),
        make_finding("gpu_ecc_errors", "ecc", nodes=[2]),
    ]
    emit_all(report, tmp_path, sinks)
    assert (tmp_path / "exclude.txt").read_text() == "gpu017\ngpu018\n"
    line = "exclude from the next job: gpu[017-018] (gpu017: straggler_node; gpu018: gpu_ecc_errors)"
    assert line in console.export_text()
    assert line.replace("gpu[017-018]", "`gpu[017-018]`") in render(report).split("## Findings")[1]


def show_exclude(path):
    return run_show(argparse.Namespace(report=str(path), quiet=False, exclude=True))


def test_show_exclude_prints_the_slurm_form_alone(tmp_path, capsys):
    report = Report(job=JOB, environment={}, results=[], findings=[])
    report.findings = [make_finding("wrong_data", "bad", nodes=[0], ranks=[1])]
    review(report, GateOptions())
    JsonSink().emit(report, tmp_path)
    assert report.exit_code == 1 and show_exclude(tmp_path) == 0  # the report was read: 0
    assert capsys.readouterr().out == "gpu003\n"
    assert show_exclude(FIXTURE) == 0  # written before the section existed: computed, and empty
    assert capsys.readouterr().out == "\n"


def test_show_exclude_on_bad_input_exits_2_and_prints_nothing(tmp_path):
    (tmp_path / "report.json").write_text("[]")
    cli = [sys.executable, "-m", "nccldoctor", "show", str(tmp_path), "--exclude"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert "not a nccldoctor report.json" in done.stderr
