"""The speed headline: peak busbw, latency, share of line rate, and whether speed was judged."""

from __future__ import annotations

import io

from rich.console import Console
from rowmaker import make_row

from nccldoctor.report import Report
from nccldoctor.reports.sections import section_tables
from nccldoctor.reports.terminal import TerminalSink
from nccldoctor.speed import line_rate, speed_section

ROWS = [
    make_row(size_bytes=8, time_us=35.0, busbw_gbps=0.0002),
    make_row(size_bytes=8, time_us=31.0, busbw_gbps=0.0003, inplace=False),
    make_row(size_bytes=1 << 20, time_us=2000.0, busbw_gbps=0.75),
    make_row(size_bytes=4 << 20, time_us=7000.0, busbw_gbps=0.9),
    make_row(probe="broadcast", size_bytes=8, time_us=20.0, busbw_gbps=0.0004),
    make_row(probe="broadcast", size_bytes=4 << 20, time_us=9000.0, busbw_gbps=0.5),
]


def node(rank, iface="eth0", speed=10000, ib=()):
    return {
        "node_rank": rank,
        "chosen": [iface],
        "interfaces": [{"name": iface, "speed_mbps": speed}, {"name": "lo", "speed_mbps": 0}],
        "ib_ports": [
            {
                "device": d,
                "port": 1,
                "state": "ACTIVE",
                "rate": "",
                "rate_gbps": rate,
                "link_layer": "InfiniBand",
            }
            for d, rate in ib
        ],
    }


def test_each_probe_gets_its_peak_busbw_and_its_latency_at_the_smallest_size():
    section = speed_section(ROWS, None, {}, nnodes=1, backend="gloo", environ={})
    speed = {p["probe"]: p for p in section["probes"]}
    assert speed["all_reduce"]["peak_busbw_gbps"] == 0.9 and speed["all_reduce"]["peak_at_bytes"] == 4 << 20
    assert speed["all_reduce"]["latency_us"] == 31.0 and speed["all_reduce"]["latency_at_bytes"] == 8
    assert speed["broadcast"]["peak_busbw_gbps"] == 0.5
    assert section["line_rate"] is None and "share_of_line_rate" not in speed["all_reduce"]
    assert section["judged"] == [] and section["note"].startswith(
        "speed reported, not judged: give --expect-busbw"
    )
    assert speed_section([], None, {}, 1, "gloo", {}) is None


def test_an_expectation_makes_the_note_say_what_was_judged():
    section = speed_section(ROWS, None, {"all_reduce": 0.5}, nnodes=1, backend="gloo", environ={})
    assert (
        section["judged"] == ["all_reduce"]
        and "judged against --expect-busbw for all_reduce" in section["note"]
    )


def test_on_several_nodes_the_peak_is_a_share_of_the_slowest_nodes_interface():
    network = {"nodes": [node(0, speed=25000), node(1, speed=10000)]}
    section = speed_section(ROWS, network, {}, nnodes=2, backend="gloo", environ={})
    assert section["line_rate"] == {"gbit_s": 10.0, "via": "eth0", "node": 1}
    share = {p["probe"]: p["share_of_line_rate"] for p in section["probes"]}
    assert share == {"all_reduce": 0.72, "broadcast": 0.4}  # 0.9 GB/s x 8 / 10 Gb/s
    assert section["normal"] and "InfiniBand" in section["normal"]


def test_nccl_over_infiniband_counts_every_active_port_unless_ib_is_disabled():
    network = {"nodes": [node(0, ib=[("mlx5_0", 200.0), ("mlx5_1", 200.0)]), node(1, ib=[("mlx5_0", 200.0)])]}
    assert line_rate(network, "nccl", {}) == {"gbit_s": 200.0, "via": "IB/RoCE ports mlx5_0:1", "node": 1}
    assert line_rate(network, "nccl", {"NCCL_IB_DISABLE": "1"})["via"] == "eth0"
    assert line_rate(network, "gloo", {})["via"] == "eth0"


def test_an_interface_without_a_known_speed_gives_no_share():
    network = {"nodes": [node(0), node(1, speed=0)]}
    assert line_rate(network, "gloo", {}) is None


def test_the_terminal_draws_the_table_and_says_speed_was_not_judged_after_the_verdict():
    report = Report(job={"world_size": 4, "nodes": []}, environment={}, results=ROWS, findings=[])
    report.sections["speed"] = speed_section(ROWS, None, {}, 1, "gloo", {})
    (title, frame), *_ = section_tables(report)
    assert title.startswith("Speed: speed reported, not judged")
    assert list(frame["peak busbw"]) == ["0.9 GB/s", "0.5 GB/s"]
    out = io.StringIO()
    TerminalSink(quiet=True, console=Console(file=out, width=200)).emit(report, None)
    assert "verdict: PASS exit code 0; speed reported, not judged: give --expect-busbw" in out.getvalue()


def test_one_rank_says_busbw_is_zero_by_definition():
    rows = [make_row(world_size=1, busbw_gbps=0.0, size_bytes=8), make_row(world_size=1, busbw_gbps=0.0)]
    report = Report(job={"world_size": 1, "nodes": []}, environment={}, results=rows, findings=[])
    report.sections["speed"] = speed_section(rows, None, {}, 1, "nccl", {})
    (_, frame), *_ = section_tables(report)
    assert frame["peak busbw"][0] == "0 GB/s (1 rank: 0 by definition)"
