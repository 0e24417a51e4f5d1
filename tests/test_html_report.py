"""report.html: every figure builds from real and synthetic reports, the page is self-contained
(no external reference, no script), escapes what it shows, and draws report.json's numbers."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers.scale_report import slow_node, synthetic_report

from nccldoctor.config import GateOptions
from nccldoctor.findings import Severity, make_finding
from nccldoctor.gate import review
from nccldoctor.outdir import REPORT_FILES
from nccldoctor.report import Report
from nccldoctor.reports import SINKS
from nccldoctor.reports.figures import FIGURE_SECTIONS, RESULTS, draw_section, drawers
from nccldoctor.reports.figures.canvas import FAIL
from nccldoctor.reports.html import FILENAME, HtmlSink, export_lines, render
from nccldoctor.reports.json_report import load

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
HEALTHY = FIXTURES / "two_nodes.json"  # 2 emulated nodes x 2 ranks, every phase, NIC sweep
SWEEP = FIXTURES / "settings_sweep.json"  # torchrun --standalone, --sweep GLOO_SOCKET_IFNAME=lo, 3 rounds
CRASHED = FIXTURES / "rank_crashed.json"  # rank 1 died in all_gather: incomplete, verdict error
CONTENDED = FIXTURES / "single_node.json"  # host_contention on node 0
# 3 emulated nodes, node 2 at a quarter of a core: straggler_node (tests/cluster/make_html_fixtures.py)
STRAGGLER = FIXTURES / "straggler_cluster.json"
PAGE_MAX_BYTES = 600_000  # a 64-node page: 375 KB measured (benchmarks/html_report.py)
# Anything a browser would fetch: src= / href= / url() / @import pointing off the page.
EXTERNAL = re.compile(
    r"""(?:\b(?:src|href|xlink:href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//)"""
    r"""|url\(\s*["']?\s*(?:https?:)?//|@import""",
    re.IGNORECASE,
)


def big_report(nnodes: int = 64) -> Report:
    return review(synthetic_report(nnodes, 8), GateOptions())


@pytest.fixture(scope="module")
def reports() -> dict[str, Report]:
    return {
        "healthy": load(HEALTHY),
        "sweep": load(SWEEP),
        "crashed": load(CRASHED),
        "contended": load(CONTENDED),
        "straggler": load(STRAGGLER),
        "64 nodes": big_report(),
    }


@pytest.fixture(scope="module")
def pages(reports) -> dict[str, str]:
    return {name: render(report, f"{name}/report.json") for name, report in reports.items()}


FIGURE = re.compile(r'<figure id="fig-([^"]+)">(<svg.*?</svg>)', re.DOTALL)


@pytest.fixture(scope="module")
def drawn(pages) -> dict[str, dict[str, str]]:
    """Each page's figures, key -> inline SVG: each report drawn once (a 64-node page takes seconds)."""
    return {name: dict(FIGURE.findall(page)) for name, page in pages.items()}


EXPECTED_FIGURES = {
    "healthy": {"curve-all_reduce", "curve-all_gather", "curve-reduce_scatter", "curve-broadcast"}
    | {
        "curve-all_to_all",
        "curve-sendrecv",
        "scores",
        "step-split",
        "node-pairs",
        "ring",
        "ddp",
        "nic-sweep",
    },
    "sweep": {"curve-all_reduce", "curve-all_gather", "sweep-all_reduce", "sweep-all_gather"},
    "crashed": {"curve-all_reduce"},
    "contended": {"curve-all_reduce", "scores", "step-split", "ring", "ddp"},
    "straggler": {"curve-all_reduce", "scores", "step-split", "node-pairs", "ring", "ddp", "nic-sweep"},
    "64 nodes": {"curve-all_reduce", "scores", "step-split", "node-pairs", "ring", "ddp"},
}


@pytest.mark.parametrize("name", list(EXPECTED_FIGURES))
def test_every_figure_of_each_report_builds_as_valid_svg(pages, drawn, name):
    assert 'class="not-drawn"' not in pages[name]  # no drawer failed
    assert EXPECTED_FIGURES[name] <= drawn[name].keys()
    for svg in drawn[name].values():
        root = ET.fromstring(svg)  # well-formed: a browser would drop a broken inline SVG
        assert root.tag.endswith("svg") and root.get("viewBox")


@pytest.mark.parametrize("name", list(EXPECTED_FIGURES))
def test_page_is_self_contained_and_needs_no_script(pages, name):
    page = pages[name]
    assert not EXTERNAL.findall(page)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<!DOCTYPE svg" not in page and "<?xml" not in page  # matplotlib's prolog names a DTD URL


def test_the_external_reference_check_catches_what_a_browser_would_fetch():
    for bad in ('<img src="https://x.example/a.png">', "<a href='//cdn.example/x'>", "url(http://a/b.woff)"):
        assert EXTERNAL.findall(bad)
    assert not EXTERNAL.findall('<use xlink:href="#m1a2"/> <img src="data:image/png;base64,AAAA">')


def test_top_of_the_page_has_the_verdict_findings_job_and_source(pages, reports):
    page = pages["crashed"]
    top = page[: page.index('<section id="job">')]
    assert "ERROR</div>" in top and "Incomplete run" in top
    assert "rank_crashed</code>" in top and "rank 1" in top
    assert "crashed/report.json" in top  # the page says which report it renders
    assert "exit code 3" in top


def test_findings_cards_carry_fix_and_export_line_to_copy(reports):
    report = copy.deepcopy(reports["crashed"])  # one probe: a page in a fraction of a second
    report.findings.append(
        make_finding(
            "iface_mismatch",
            "node 1 <b>chose</b> docker0",
            nodes=[1],
            fix="export GLOO_SOCKET_IFNAME=fast0 on every node, then run again",
        )
    )
    page = render(report, "x")
    assert '<pre class="copy"' in page and "export GLOO_SOCKET_IFNAME=fast0</pre>" in page
    assert "node 1 &lt;b&gt;chose&lt;/b&gt; docker0" in page  # escaped: a report's text is never markup
    assert "<b>chose</b>" not in page


def test_export_lines_are_taken_whole_from_a_fix():
    finding = make_finding(
        "iface_mismatch", "m", fix="export NCCL_IB_HCA=^=mlx5_1  (on every node); export A='x y'; export B=1"
    )
    assert export_lines(finding) == ["export NCCL_IB_HCA=^=mlx5_1", "export A='x y'", "export B=1"]


def test_exclude_list_is_shown_when_there_is_one(pages, reports):
    slow = slow_node(64)
    assert '<section id="exclude">' in pages["64 nodes"]
    assert f"node{slow:04d}" in pages["64 nodes"].split('<section id="exclude">')[1].split("</section>")[0]
    assert '<section id="exclude">' not in pages["healthy"]


def test_rows_a_finding_points_at_are_highlighted(pages):
    # single_node: host_contention names node 0 (warn): its Hosts row is marked, in the warn colour
    hosts = pages["contended"].split("<h3>Hosts")[1].split("</table>")[0]
    assert '<tr class="flag-warn"><td>0 vm</td>' in hosts
    healthy_hosts = pages["healthy"].split("<h3>Hosts")[1].split("</table>")[0]
    assert "flag-" not in healthy_hosts


def test_straggler_bars_are_red_for_the_ranks_a_fail_finding_names(drawn):
    for name in ("straggler", "64 nodes"):  # a real run's throttled node; the synthetic slow node
        assert FAIL in drawn[name]["scores"].replace(f"stroke: {FAIL}", "")
    healthy = drawn["healthy"]["scores"]
    assert FAIL not in healthy.replace(f"stroke: {FAIL}", "")  # only the fail threshold's line is red


def test_node_pair_heat_map_annotates_the_measured_numbers(reports, drawn):
    pairs = reports["healthy"].sections["stragglers"]["node_pairs"]["gbps"]
    svg = drawn["healthy"]["node-pairs"]
    assert f">{pairs[0][1]:.3g}<" in svg and f">{pairs[1][0]:.3g}<" in svg  # 1.25, 1.75 GB/s
    big = drawn["64 nodes"]["node-pairs"]
    assert "sampled directions" in big  # 64 nodes keep sampled pairs, not a matrix


def test_expectation_is_drawn_on_the_probe_it_bounds(reports):
    report = copy.deepcopy(reports["healthy"])
    report.sections["config"]["expect_busbw"] = {"all_reduce": 0.5}
    report.sections["expectations"] = {
        "file": "/etc/expect/cpu.toml",
        "rules": [{"key": 'probes.all_gather.at."4M".min_busbw_gbps', "line": 7, "bound": 0.3}],
    }
    drawn = {d.key: d for d in draw_section(report, RESULTS)}
    assert "expected ≥ 0.5 GB/s (--expect-busbw)" in drawn["curve-all_reduce"].svg
    assert "expected ≥ 0.3 GB/s (cpu.toml:7)" in drawn["curve-all_gather"].svg
    assert "expected" not in drawn["curve-broadcast"].svg


def sweep_figure(report: Report) -> str:
    (first, *_) = draw_section(report, "settings_sweep")
    return first.svg


def test_settings_sweep_marks_the_recommended_setting(reports):
    report = copy.deepcopy(reports["sweep"])
    assert "recommended" not in sweep_figure(report)  # inconclusive: no winner drawn
    report.sections["settings_sweep"]["verdicts"]["all sizes"] = {
        "best": "GLOO_SOCKET_IFNAME=lo",
        "verdict": "recommended",
    }
    assert "GLOO_SOCKET_IFNAME=lo  ★ recommended" in sweep_figure(report)


def test_ddp_figure_shows_the_reports_throughput(reports, drawn):
    ddp = reports["healthy"].sections["ddp"]
    svg = drawn["healthy"]["ddp"]
    assert f"{ddp['throughput']['tokens_per_s']:,.0f} tokens/s" in svg
    assert f"{ddp['communication']['predicted_allreduce_ms']:.1f} ms" in svg


def test_a_figure_that_cannot_read_its_section_costs_only_itself(reports):
    report = copy.deepcopy(reports["healthy"])
    report.sections["stragglers"]["ring"] = [{"kind": "ring_inter"}]  # a figure cannot read it
    del report.sections["health"]["hosts"][0]["load1"]  # nor a table
    page = render(report, "x")
    assert 'class="not-drawn">Figure draw_ring not drawn: KeyError' in page
    assert 'class="not-drawn">Tables of health not drawn: KeyError' in page
    assert 'id="fig-scores"' in page and 'id="fig-curve-all_reduce"' in page and "<h3>GPUs" not in page


def test_page_is_a_few_hundred_kb_for_64_nodes_and_the_same_bytes_each_time(pages, reports):
    assert len(pages["64 nodes"].encode()) < PAGE_MAX_BYTES
    assert render(reports["sweep"], "sweep/report.json") == pages["sweep"]  # no date, no random ids


def test_every_report_folder_gets_report_html(tmp_path, reports):
    assert SINKS["html"] is HtmlSink and FILENAME in REPORT_FILES
    HtmlSink().emit(reports["healthy"], tmp_path)
    page = (tmp_path / FILENAME).read_text()
    assert f"<code>{tmp_path / 'report.json'}</code>" in page


def nccldoctor(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nccldoctor", *args], capture_output=True, text=True, timeout=120
    )


def test_show_html_rebuilds_the_page_beside_report_json(tmp_path):
    (tmp_path / "report.json").write_text(CRASHED.read_text())
    run = nccldoctor("show", str(tmp_path), "--html")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tmp_path / FILENAME)
    assert "rank_crashed" in (tmp_path / FILENAME).read_text()


def test_show_html_that_cannot_write_says_so_in_one_line(tmp_path):
    (tmp_path / "report.json").write_text(CRASHED.read_text())
    (tmp_path / FILENAME).mkdir()  # a folder where the page goes: not writable as a file
    run = nccldoctor("show", str(tmp_path / "report.json"), "--html")
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "show --html: cannot write" in run.stderr


def test_compare_html_writes_the_comparison_page(tmp_path):
    baseline = Path(__file__).parent / "fixtures" / "baseline"
    out = tmp_path / "compare.html"
    run = nccldoctor(
        "compare",
        str(baseline / "cluster_fast1.json"),
        str(baseline / "cluster_slow.json"),
        "--html",
        str(out),
    )
    assert run.returncode == 1  # the slow NIC's run regressed
    page = out.read_text()
    assert "FAIL</div>" in page and "regression" in page and "Against the baseline" in page
    assert 'id="fig-baseline"' in page and "fail</text>" in page  # the regressed values, drawn


def test_severity_pills_follow_the_findings(pages):
    page = pages["contended"]
    assert f'<span class="pill {Severity.WARN.value}">warn' in page


LOADS_MATPLOTLIB = """
import sys
from nccldoctor.report import Report
from nccldoctor.reports.html import render
from nccldoctor.reports.json_report import load
report = load(sys.argv[1]) if len(sys.argv) > 1 else Report(job={}, environment={}, results=[], findings=[])
render(report, "x")
print("matplotlib" in sys.modules)
"""


def test_figure_sections_are_the_drawers_sections_and_tables_only_pages_skip_matplotlib():
    assert {d.section for d in drawers()} == FIGURE_SECTIONS

    def loads(*report: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", LOADS_MATPLOTLIB, *report], capture_output=True, text=True, timeout=120
        )
        return run.stdout.strip() or run.stderr

    assert loads() == "False"  # a page with no figure (preflight, explain): no matplotlib import
    assert loads(str(CRASHED)) == "True"  # the control: a page with figures does load it


def test_explain_writes_a_page_of_its_tables_and_no_figure(tmp_path):
    log = Path(__file__).parent / "fixtures" / "explain" / "own" / "collective_timeout.log"
    run = nccldoctor("explain", str(log), "--out", str(tmp_path), "--quiet")
    assert run.returncode == 1, run.stderr
    page = (tmp_path / FILENAME).read_text()
    assert "collective_timeout</code>" in page and "<h2>Log diagnosis</h2>" in page
    assert "<svg" not in page and "<td>None</td>" not in page  # explain's nodes have no node rank
