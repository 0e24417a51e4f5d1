"""Every sink renders the same Report; report.json keeps its contract."""

import json
from types import SimpleNamespace

import pandas as pd
from rich.console import Console
from rowmaker import make_row

from nccldoctor.analysis import judge_rows
from nccldoctor.report import SCHEMA_VERSION, Report
from nccldoctor.reports import SINKS, emit_all, make_sinks
from nccldoctor.reports.json_report import load
from nccldoctor.reports.tables import busbw_footer
from nccldoctor.reports.terminal import TerminalSink


def row(probe, size, inplace, busbw, wrong=0, wrong_ranks=(), wrong_sources=(), slowest=1):
    return make_row(
        probe=probe,
        size_bytes=size,
        count=size // 4,
        op="sum" if probe == "all_reduce" else "none",
        inplace=inplace,
        algbw_gbps=busbw,
        busbw_gbps=busbw,
        wrong=wrong,
        slowest_rank=slowest,
        wrong_ranks=list(wrong_ranks),
        wrong_sources=list(wrong_sources),
    )


ROWS = [
    row("all_reduce", 1024, True, 1.5),
    row("all_reduce", 4096, True, 3.0),
    row("all_gather", 4096, False, 2.0, wrong=8, wrong_ranks=[0, 1, 2, 3], wrong_sources=[2]),
    row("all_gather", 4096, True, 2.5),
]
JOB = {
    "world_size": 4,
    "nnodes": 2,
    "backend": "gloo",
    "device": "cpu",
    "versions": {"torch": "2.13.0", "cuda": None, "nccl": None},
    "nodes": [
        {"node_rank": 0, "hostname": "a", "ranks": [0, 1]},
        {"node_rank": 1, "hostname": "b", "ranks": [2, 3]},
    ],
}


def nodes_of(ranks):
    return sorted({r // 2 for r in ranks})


def make_report(**kw):
    findings = judge_rows(ROWS, {"all_reduce": 10.0}, nodes_of)
    return Report(
        job=JOB,
        environment={"variables": {"NCCL_DEBUG": "INFO"}, "differs_by_node": {}},
        results=ROWS,
        findings=findings,
        **kw,
    )


def test_rules_name_the_sender_of_wrong_data_and_low_bandwidth():
    findings = judge_rows(ROWS, {"all_reduce": 10.0, "all_gather": 2.0}, nodes_of)
    by_code = {f.code: f for f in findings}
    assert set(by_code) == {"wrong_data", "low_bandwidth"}
    assert by_code["wrong_data"].ranks == [2] and by_code["wrong_data"].nodes == [1]
    assert by_code["wrong_data"].evidence["seen_at_ranks"] == [0, 1, 2, 3]
    low = by_code["low_bandwidth"]
    assert low.evidence["probe"] == "all_reduce" and low.evidence["size_bytes"] == 4096
    assert low.evidence["busbw_gbps"] == 3.0  # the largest size, not the best overall


def test_low_bandwidth_uses_the_best_mode_at_the_largest_size():
    # all_gather at 4K: 2.0 out-of-place, 2.5 in-place -> the better one (2.5) is judged
    assert not [f for f in judge_rows(ROWS, {"all_gather": 2.4}, nodes_of) if f.code == "low_bandwidth"]
    assert any(f.code == "low_bandwidth" for f in judge_rows(ROWS, {"all_gather": 2.6}, nodes_of))


def test_json_contract_and_round_trip(tmp_path):
    report = make_report()
    emit_all(report, tmp_path, [SINKS["json"]()])
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["tool"]["name"] == "nccldoctor"
    assert data["verdict"] == "fail" and data["exit_code"] == 1 and data["complete"] is True
    assert {"code", "severity", "message", "nodes", "ranks", "evidence", "fix"} <= set(data["findings"][0])
    assert {"probe", "size_bytes", "time_us", "algbw_gbps", "busbw_gbps", "wrong"} <= set(data["results"][0])
    assert data["job"]["nodes"][1] == {"node_rank": 1, "hostname": "b", "ranks": [2, 3]}
    again = load(tmp_path)
    assert again.to_dict() == report.to_dict()


def test_incomplete_report_is_error_with_exit_3():
    report = make_report(complete=False)
    assert report.verdict == "error" and report.exit_code == 3


def test_csv_markdown_and_terminal_show_the_same_rows(tmp_path):
    report = make_report()
    console = Console(record=True, width=200)
    sinks = make_sinks()
    sinks[-1] = TerminalSink(console=console)
    emit_all(report, tmp_path, sinks)
    frame = pd.read_csv(tmp_path / "results.csv")
    assert len(frame) == len(ROWS) and frame.loc[2, "wrong_ranks"] == "0 1 2 3"
    markdown = (tmp_path / "report.md").read_text()
    assert "## all_gather" in markdown and "| 4K | 1024 | float32 |" in markdown
    assert "`" not in markdown.split("## Findings")[0]
    text = console.export_text()
    assert "all_reduce" in text and "wrong_data" in text and "verdict: FAIL" in text
    # all_reduce is in-place only in torch: its out-of-place columns say so
    assert "n/a" in markdown.split("## all_reduce")[1].split("## ")[0]


def test_expectation_for_a_probe_that_measured_nothing_fails():
    (finding,) = judge_rows([], {"all_gather": 10.0}, nodes_of, ["all_gather"])
    assert finding.code == "low_bandwidth" and "no size was measured" in finding.message
    assert judge_rows([], {"all_gather": 10.0}, nodes_of, ["all_reduce"]) == []  # not run: not judged


def test_findings_are_located_by_node_and_hostname_when_hostnames_differ():
    from nccldoctor.findings import make_finding
    from nccldoctor.reports.tables import hostnames, where

    nodes = [
        {"node_rank": 0, "hostname": "gpu-1", "ranks": [0]},
        {"node_rank": 1, "hostname": "gpu-2", "ranks": [1]},
    ]
    report = Report(job={"nodes": nodes}, environment={}, results=[], findings=[])
    finding = make_finding("port_blocked", "m", nodes=[1], ranks=[1])
    assert where(finding, hostnames(report)) == "node 1 (gpu-2) / rank 1"
    shared = Report(
        job={"nodes": [{**n, "hostname": "same"} for n in nodes]}, environment={}, results=[], findings=[]
    )
    assert (
        where(finding, hostnames(shared)) == "node 1 / rank 1"
    )  # a label that tells nothing apart is left out


def test_an_empty_results_csv_still_has_its_header(tmp_path):
    report = Report(job=JOB, environment={}, results=[], findings=[])
    emit_all(report, tmp_path, make_sinks(SimpleNamespace(quiet=True)))
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert header[:3] == ["probe", "size_bytes", "count"] and "busbw_gbps" in header


def nic_result(name, busbw, in_use=False):
    return {
        "iface": name,
        "in_use": in_use,
        "setting": f"X={name}",
        "busbw_gbps": busbw,
        "size_bytes": 1 << 26,
        "latency_us": 5.0,
        "line_rate_mbps": 200000,
        "percent_of_line_rate": 40.0,
        "failed": None,
    }


def test_nic_sweep_view_names_the_swept_variable_and_shows_the_note(tmp_path):
    from nccldoctor.reports.sections import section_tables

    ib = {"backend": "nccl", "variable": "NCCL_IB_HCA", "note": None, "in_use": None, "rows": []}
    ib["results"] = [nic_result("mlx5_0:1", 10.0), nic_result("mlx5_1:1", 4.0)]
    ((title, frame),) = section_tables(make_report(sections={"nic_sweep": ib}))
    assert title == "Per-NIC sweep (nccl, NCCL_IB_HCA per port, all_reduce in fresh processes)"
    assert frame.columns[0] == "IB port" and list(frame["IB port"]) == ["mlx5_0:1", "mlx5_1:1"]
    note = "NCCL_SOCKET_IFNAME moves only its bootstrap traffic"
    socket = {**ib, "variable": "NCCL_SOCKET_IFNAME", "note": note, "in_use": "eth0"}
    socket["results"] = [nic_result("eth0", 10.0, in_use=True), nic_result("eth1", 10.0)]
    console = Console(record=True, width=300)
    sinks = make_sinks()
    sinks[-1] = TerminalSink(console=console)
    emit_all(make_report(sections={"nic_sweep": socket}), tmp_path, sinks)
    terminal = " ".join(console.export_text().split())  # the title wraps at the table's width
    assert f"Note: {note}" in terminal and f"Note: {note}" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["nic_sweep"]["variable"] == "NCCL_SOCKET_IFNAME"
    # A report written before `variable` existed keeps its title and columns.
    old = {k: v for k, v in socket.items() if k not in ("variable", "note")}
    ((title, frame),) = section_tables(make_report(sections={"nic_sweep": old}))
    assert title == "Per-NIC sweep (nccl, all_reduce in fresh processes)" and frame.columns[0] == "interface"


def test_one_rank_footers_say_busbw_is_zero_by_definition(tmp_path):
    alone = [
        make_row(probe="all_reduce", world_size=1, busbw_gbps=0.0),
        make_row(probe="broadcast", op="none", root=0, world_size=1, busbw_gbps=0.5),  # factor 1: not 0
    ]
    report = Report(job={**JOB, "world_size": 1, "nnodes": 1}, environment={}, results=alone, findings=[])
    console = Console(record=True, width=200)
    sinks = make_sinks()
    sinks[-1] = TerminalSink(console=console)
    emit_all(report, tmp_path, sinks)
    note = "Avg bus bandwidth: 0.000 GB/s (busbw is 0 by definition with one rank: no data crosses a link)"
    for text in (console.export_text(), (tmp_path / "report.md").read_text()):
        footers = [line.rstrip() for line in text.splitlines() if line.startswith("Avg bus")]
        assert footers == [note, "Avg bus bandwidth: 0.500 GB/s"], text
    # Two ranks whose busbw rounds to 0 are slow, not alone: no note.
    assert "by definition" not in busbw_footer([make_row(world_size=2, busbw_gbps=0.0)], "all_reduce")
