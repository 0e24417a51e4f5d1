"""nccldoctor.prom: the run's numbers in Prometheus' text exposition format, for
node_exporter's textfile collector (--collector.textfile.directory).

Written with the official client (prometheus_client: a registry of its own, formatted by
generate_latest), then through nccldoctor.atomic like every report file. The client's own
write_to_textfile is atomic too (a temporary file, renamed; removed on error) but does not fsync
before the rename, so a crash could leave an empty nccldoctor.prom, and its temporary name
(`nccldoctor.prom.<pid>.<thread>`) is not the one the report folder's cleanup knows.

Names follow Prometheus' conventions: base units in the name (bytes per second, seconds),
gauges (a report is a snapshot: nothing here only ever goes up), and labels of low cardinality:
probe, size and mode; node rank and hostname; link ends; finding code and severity.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from nccldoctor.atomic import write_atomically
from nccldoctor.gate.exclude import exclude_of, node_maps
from nccldoctor.nodepairs import MATRIX_MAX, node_pair_links
from nccldoctor.report import Report

FILENAME = "nccldoctor.prom"
PREFIX = "nccldoctor_"
VERDICTS = ("pass", "warn", "fail", "error")
GB = 1e9  # the report's GB/s are 1e9 bytes/s


def _gauge(registry: CollectorRegistry, name: str, help: str, labels: Iterable[str] = ()) -> Gauge:
    return Gauge(PREFIX + name, help, list(labels), registry=registry)


def add_collectives(registry: CollectorRegistry, report: Report) -> None:
    """Per probe, size and mode: busbw and the time of one call (the mean over ranks)."""
    labels = ("probe", "size_bytes", "inplace")
    busbw = _gauge(registry, "busbw_bytes_per_second", "Bus bandwidth (nccl-tests' busbw)", labels)
    latency = _gauge(registry, "latency_seconds", "Time of one collective call, mean over ranks", labels)
    for row in report.probe_results:
        key = (row.probe, str(row.size_bytes), str(bool(row.inplace)).lower())
        busbw.labels(*key).set(row.busbw_gbps * GB)
        latency.labels(*key).set(row.time_us / 1e6)


# A full 16-node matrix; beyond, the slowest links: a scrape should not grow as N^2 series.
MAX_LINK_SERIES = MATRIX_MAX * (MATRIX_MAX - 1)


def add_nodes(registry: CollectorRegistry, report: Report) -> None:
    """Per node: its slowest rank's compute score; per node pair: the measured link bandwidth."""
    stragglers = report.sections.get("stragglers") or {}
    hosts, _ = node_maps(report.job)
    score = _gauge(
        registry,
        "node_compute_score",
        "Compute score of the node's slowest rank (1 = the job's typical rank)",
        ("node", "host"),
    )
    worst: dict[int, float] = {}
    for rank in stragglers.get("ranks") or []:
        if rank.get("score") is not None:
            worst[rank["node"]] = min(worst.get(rank["node"], rank["score"]), rank["score"])
    for node, value in sorted(worst.items()):
        score.labels(str(node), hosts.get(node) or rank_host(stragglers, node)).set(value)
    pairs = stragglers.get("node_pairs") or {}
    link = _gauge(
        registry,
        "link_bytes_per_second",
        "Point-to-point bandwidth from one node to another (the slowest "
        f"{MAX_LINK_SERIES} when more were measured)",
        ("src_node", "dst_node", "src_host", "dst_host"),
    )
    links = node_pair_links(pairs)
    if len(links) > MAX_LINK_SERIES:  # 1,024 nodes: ~24,000 directions, one series each
        links = sorted(links, key=lambda link: link[2])[:MAX_LINK_SERIES]
    for src, dst, gbps in links:
        link.labels(str(src), str(dst), hosts.get(src, ""), hosts.get(dst, "")).set(gbps * GB)


def rank_host(stragglers: dict, node: int) -> str:
    return next((r.get("host", "") for r in stragglers.get("ranks", []) if r["node"] == node), "")


def add_verdict(registry: CollectorRegistry, report: Report) -> None:
    """Findings by code and severity, the verdict (one series per verdict, 1 for this run's),
    the exit code, the hosts to exclude, the run's duration and the report's time."""
    findings = _gauge(registry, "findings", "Findings of the run", ("code", "severity"))
    counts: dict[tuple[str, str], int] = {}
    for f in report.findings:
        counts[f.code, f.severity.value] = counts.get((f.code, f.severity.value), 0) + 1
    for (code, severity), n in sorted(counts.items()):
        findings.labels(code, severity).set(n)
    verdict = _gauge(registry, "verdict", "1 for the run's verdict, 0 for the others", ("verdict",))
    for name in VERDICTS:
        verdict.labels(name).set(1 if report.verdict == name else 0)
    _gauge(registry, "exit_code", "The bench's exit code (0 pass, 1 fail, 3 incomplete)").set(
        report.exit_code
    )
    _gauge(registry, "run_complete", "1 when the run finished").set(1 if report.complete else 0)
    _gauge(registry, "excluded_hosts", "Hosts the run says to keep out of the next job").set(
        len(exclude_of(report)["hosts"])
    )
    run_s = (report.sections.get("timing") or {}).get("run_s")
    if run_s is not None:
        _gauge(registry, "run_duration_seconds", "Wall time of the run on rank 0").set(run_s)
    created = datetime.datetime.fromisoformat(report.created)
    _gauge(registry, "report_timestamp_seconds", "When the report was written (Unix time)").set(
        created.timestamp()
    )


def registry_of(report: Report) -> CollectorRegistry:
    registry = CollectorRegistry()
    add_collectives(registry, report)
    add_nodes(registry, report)
    add_verdict(registry, report)
    return registry


class PrometheusSink:
    @classmethod
    def from_options(cls, options: object) -> PrometheusSink:
        return cls()

    def emit(self, report: Report, out_dir: Path) -> None:
        write_atomically(out_dir / FILENAME, generate_latest(registry_of(report)))
