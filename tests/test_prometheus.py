"""nccldoctor.prom parses with prometheus_client's own parser and holds the run's numbers."""

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from nccldoctor.findings import Severity, make_finding
from nccldoctor.reports.json_report import load
from nccldoctor.reports.prometheus import PrometheusSink

FIXTURE = Path(__file__).parent / "fixtures" / "gate" / "two_nodes.json"  # a real 2 x 2 emulated run


def families(report, tmp_path):
    PrometheusSink().emit(report, tmp_path)
    text = (tmp_path / "nccldoctor.prom").read_text()
    return {family.name: family for family in text_string_to_metric_families(text)}


def by_labels(family, *names):
    return {tuple(s.labels[n] for n in names): s.value for s in family.samples}


def test_the_prom_file_has_bandwidth_latency_scores_links_and_the_verdict(tmp_path):
    report = load(FIXTURE)
    report.findings = [
        make_finding("straggler_node", "slow", nodes=[1], severity=Severity.FAIL),
        make_finding("mtu_mismatch", "mtu", nodes=[1]),
        make_finding("mtu_mismatch", "mtu", nodes=[0]),
    ]
    report.sections["timing"] = {"run_s": 70.25, "phases_s": {}}
    metrics = families(report, tmp_path)
    assert all(f.type == "gauge" for f in metrics.values())

    busbw = by_labels(metrics["nccldoctor_busbw_bytes_per_second"], "probe", "size_bytes", "inplace")
    row = next(r for r in report.results if r.probe == "all_gather" and r.size_bytes == 8388608 and r.inplace)
    assert busbw["all_gather", "8388608", "true"] == row.busbw_gbps * 1e9
    assert len(busbw) == len(report.probe_results)  # one series per probe, size and mode
    latency = by_labels(metrics["nccldoctor_latency_seconds"], "probe", "size_bytes", "inplace")
    assert latency["all_gather", "8388608", "true"] == row.time_us / 1e6

    hosts = [n["hostname"] for n in report.job["nodes"]]
    scores = by_labels(metrics["nccldoctor_node_compute_score"], "node", "host")
    ranks = report.sections["stragglers"]["ranks"]
    assert scores == {
        (str(n), hosts[n]): min(r["score"] for r in ranks if r["node"] == n) for n in (0, 1)
    }  # the node's slowest rank
    links = by_labels(metrics["nccldoctor_link_bytes_per_second"], "src_node", "dst_node", "dst_host")
    gbps = report.sections["stragglers"]["node_pairs"]["gbps"]
    assert links == {("0", "1", hosts[1]): gbps[0][1] * 1e9, ("1", "0", hosts[0]): gbps[1][0] * 1e9}

    findings = by_labels(metrics["nccldoctor_findings"], "code", "severity")
    assert findings == {("straggler_node", "fail"): 1, ("mtu_mismatch", "warn"): 2}
    assert by_labels(metrics["nccldoctor_verdict"], "verdict") == {
        ("pass",): 0,
        ("warn",): 0,
        ("fail",): 1,
        ("error",): 0,
    }
    assert metrics["nccldoctor_exit_code"].samples[0].value == 1
    assert metrics["nccldoctor_excluded_hosts"].samples[0].value == 1
    assert metrics["nccldoctor_run_duration_seconds"].samples[0].value == 70.25
    assert (
        metrics["nccldoctor_report_timestamp_seconds"].samples[0].value == 1796142828
    )  # 2026-12-01T16:33:48Z


def test_a_report_without_sections_or_timing_still_writes_a_valid_file(tmp_path):
    report = load(FIXTURE)
    report.results, report.findings, report.sections = [], [], {}
    metrics = families(report, tmp_path)
    assert "nccldoctor_run_duration_seconds" not in metrics  # no timing section: not invented
    assert by_labels(metrics["nccldoctor_verdict"], "verdict")[("pass",)] == 1
    assert metrics["nccldoctor_busbw_bytes_per_second"].samples == []


def test_a_one_node_report_has_scores_and_no_links(tmp_path):
    # A real single-node run: node_pairs is {"nodes": [0], "gbps": []} (no pair to measure).
    report = load(Path(__file__).parent / "fixtures" / "reports" / "single_node.json")
    assert report.sections["stragglers"]["node_pairs"] == {"nodes": [0], "size_bytes": 4194304, "gbps": []}
    metrics = families(report, tmp_path)
    assert list(by_labels(metrics["nccldoctor_node_compute_score"], "node")) == [("0",)]
    assert (
        "nccldoctor_link_bytes_per_second" not in metrics
        or not metrics["nccldoctor_link_bytes_per_second"].samples
    )
