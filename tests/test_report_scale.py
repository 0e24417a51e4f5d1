"""A 1,024-node x 8-rank report: written in seconds, report.json bounded, the terminal and
Markdown showing the worst rows and still naming the slow node and the blocked one."""

from __future__ import annotations

import io
import json
import time

import pytest
from helpers.scale_report import BLOCKED_NODE, SLOW_NODE, host, synthetic_report
from rich.console import Console

from nccldoctor.config import GateOptions
from nccldoctor.gate import review
from nccldoctor.nodepairs import MATRIX_MAX, sampled_rounds
from nccldoctor.reports import SINKS, make_sinks
from nccldoctor.reports.markdown import render
from nccldoctor.reports.prometheus import MAX_LINK_SERIES
from nccldoctor.reports.terminal import LOG_WIDTH, TerminalSink

NODES, PER_NODE = 1024, 8
TERMINAL_MAX_LINES = 400  # measured 325 (benchmarks/report_scale.py); 8,192 ranks would be ~20,000
REPORT_MAX_BYTES = 12_000_000  # measured 8.5 MB: ~1 kB per rank, nothing N^2


@pytest.fixture(scope="module")
def report():
    return review(synthetic_report(NODES, PER_NODE), GateOptions())


@pytest.fixture(scope="module")
def written(report, tmp_path_factory):
    out = tmp_path_factory.mktemp("scale")
    terminal = io.StringIO()
    sinks = [s for s in make_sinks(None) if not isinstance(s, TerminalSink)]
    sinks.append(TerminalSink(console=Console(file=terminal, width=LOG_WIDTH, highlight=False)))
    assert len(sinks) == len(SINKS)
    start = time.monotonic()
    for sink in sinks:
        sink.emit(report, out)
    return out, terminal.getvalue(), time.monotonic() - start


def test_every_sink_writes_in_seconds(written):
    _, _, seconds = written
    assert seconds < 30  # 2.6 s measured; 68 s before the terminal and Prometheus were fixed


def test_report_json_is_bounded_and_keeps_sampled_pairs_not_a_matrix(written):
    out, _, _ = written
    assert (out / "report.json").stat().st_size < REPORT_MAX_BYTES
    data = json.loads((out / "report.json").read_text())
    assert len(data["stragglers"]["ranks"]) == NODES * PER_NODE  # per rank: linear, kept
    pairs = data["stragglers"]["node_pairs"]
    assert "gbps" not in pairs  # no 1,024 x 1,024 matrix
    assert len(pairs["pairs"]) == NODES * sampled_rounds(NODES)  # each round: every node, both ways
    ports = data["network"]["ports"]
    assert ports["plan"]["kind"] == "bounded" and ports["pairs_checked"] == ports["plan"]["pairs"]
    assert {p["to_node"] for p in ports["pairs"]} == {BLOCKED_NODE}  # only the failing pairs
    assert data["exclude"]["hosts"] == [host(SLOW_NODE), host(BLOCKED_NODE)]


def test_the_terminal_shows_the_worst_and_says_how_many_more(written):
    _, text, _ = written
    lines = text.splitlines()
    assert len(lines) < TERMINAL_MAX_LINES
    ranks_table = text[text.index("Ranks (slowest 10 of 8192") :]
    first_row = next(line for line in ranks_table.splitlines() if line.startswith("│"))
    assert f"{SLOW_NODE} {host(SLOW_NODE)}" in first_row  # the slowest rank's node heads the table
    pairs_table = text[text.index("Node pairs (slowest") :]
    first_link = next(line for line in pairs_table.splitlines() if line.startswith("│"))
    assert f"node {SLOW_NODE}" in first_link
    assert "… and 1,004 more (see report.json)" in text  # hosts: 20 of 1,024
    assert "Findings (6 of 259" in text
    assert "host_contention │ 253" in text  # the rest counted per code
    assert f"exclude from the next job: node[{SLOW_NODE:04d},{BLOCKED_NODE}]" in text
    assert f"node {BLOCKED_NODE} ({host(BLOCKED_NODE)}" in text  # port_blocked, listed one by one


def test_markdown_is_bounded_the_same_way(report):
    text = render(report)
    assert len(text.splitlines()) < TERMINAL_MAX_LINES
    assert "## Nodes: first 20 … and 1,004 more (see report.json)" in text
    assert "### More findings, by code" in text
    assert f"node {SLOW_NODE} ({host(SLOW_NODE)})" in text


def test_prometheus_keeps_the_slowest_links(written):
    out, _, _ = written
    prom = (out / "nccldoctor.prom").read_text()
    links = [line for line in prom.splitlines() if line.startswith("nccldoctor_link_bytes_per_second{")]
    assert len(links) == MAX_LINK_SERIES == MATRIX_MAX * (MATRIX_MAX - 1)
    assert all(f'"{SLOW_NODE}"' in line for line in links[:10])  # its links are the slowest
