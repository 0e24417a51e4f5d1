"""The bounds a run was judged against, as the figures draw them: --expect-busbw and the rules of
an --expect file (report.json's `config` and `expectations` sections)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nccldoctor.report import Report
from nccldoctor.units import parse_size

# probes.all_reduce.min_busbw_gbps, probes.all_reduce.at."8M".max_latency_us, ...
_PROBE_RULE = re.compile(r'^probes\.(\w+)\.(?:at\."?([^".]+)"?\.)?(min_busbw_gbps|max_latency_us)$')


@dataclass(frozen=True)
class Bound:
    metric: str  # "min_busbw_gbps" or "max_latency_us"
    value: float
    size_bytes: int | None  # None: the probe's bound at any size the rule judges
    source: str  # "expect.toml:7" or "--expect-busbw"


def probe_bounds(report: Report, probe: str) -> list[Bound]:
    """Every bound on `probe`'s busbw or latency that the run was given."""
    bounds = []
    given = (report.sections.get("config") or {}).get("expect_busbw") or {}
    if probe in given:
        largest = max((r.size_bytes for r in report.probe_results if r.probe == probe), default=None)
        bounds.append(Bound("min_busbw_gbps", float(given[probe]), largest, "--expect-busbw"))
    section = report.sections.get("expectations") or {}
    name = Path(section.get("file") or "expect").name
    for rule in section.get("rules", []):
        match = _PROBE_RULE.match(rule["key"])
        if match and match.group(1) == probe:
            size = parse_size(match.group(2)) if match.group(2) else None
            bounds.append(Bound(match.group(3), float(rule["bound"]), size, f"{name}:{rule['line']}"))
    return bounds


def link_bound(report: Report, key: str) -> tuple[float, str] | None:
    """(bound, 'file:line') of an --expect file's `links.<key>` rule, or None."""
    section = report.sections.get("expectations") or {}
    name = Path(section.get("file") or "expect").name
    for rule in section.get("rules", []):
        if rule["key"] == f"links.{key}":
            return float(rule["bound"]), f"{name}:{rule['line']}"
    return None
