"""The report's `consistency` section: every node's facts, and which checks agree or differ."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nccldoctor.consistency.facts import MASKED, NodeFacts
from nccldoctor.consistency.judge import comparable_version
from nccldoctor.consistency.majority import odd_ones_out
from nccldoctor.findings import Finding
from nccldoctor.units import format_bytes


def consistency_section(
    facts: Mapping[int, NodeFacts], offsets: Mapping[int, Any], findings: list[Finding]
) -> dict[str, Any]:
    checks = compared_values(facts)
    differs, agree = [], []
    for check, values in checks.items():
        majority = odd_ones_out(values)
        if majority.agree:
            agree.append({"check": check, "value": majority.majority})
            continue
        differs.append(
            {
                "check": check,
                "majority": None if majority.tie else majority.majority,
                "odd": {str(n): values[n] for n in majority.differing},
            }
        )
    return {
        "nodes": [_node_row(facts[n], offsets.get(n)) for n in sorted(facts)],
        "agree": agree,
        "differs": differs,
        "findings": sorted({f.code for f in findings}),
    }


def compared_values(facts: Mapping[int, NodeFacts]) -> dict[str, dict[int, Any]]:
    """check name -> node -> the value compared (as the judgement compares it)."""
    checks: dict[str, dict[int, Any]] = {}
    components = dict.fromkeys(c for f in facts.values() for c in f.versions)
    for component in components:
        checks[component] = {
            n: comparable_version(component, f.versions.get(component)) for n, f in facts.items()
        }
    checks["ranks per node"] = {n: f.ranks for n, f in facts.items()}
    checks["visible GPUs"] = {n: f.gpus_visible for n, f in facts.items()}
    for name in sorted({name for f in facts.values() for name in f.env}):
        checks[f"${name}"] = {n: _env_value(f.env.get(name)) for n, f in facts.items()}
    for index, path in enumerate(_listed(facts, "code")):
        checks[f"code {path}"] = {n: _code_value(f.code, index) for n, f in facts.items()}
    for index, path in enumerate(_listed(facts, "paths")):
        checks[f"path {path}"] = {n: _path_value(f.paths, index) for n, f in facts.items()}
    return checks


def _versions_of(facts: Mapping[int, NodeFacts], component: str) -> dict[int, Any]:
    return {n: comparable_version(component, f.versions.get(component)) for n, f in facts.items()}


def _listed(facts: Mapping[int, NodeFacts], kind: str) -> list[str]:
    first = next(iter(facts.values()), None)
    return [entry.get("path", "?") for entry in getattr(first, kind, [])] if first else []


def _env_value(value: str | None) -> str | None:
    return "(masked)" if value and value.startswith(MASKED) else value


def _code_value(entries: list[dict[str, Any]], index: int) -> str | None:
    if index >= len(entries):
        return None
    entry = entries[index]
    if entry.get("kind") == "missing":
        return "missing"
    return str(entry.get("digest", ""))[:12] or None


def _path_value(entries: list[dict[str, Any]], index: int) -> str | None:
    return path_cell(entries[index]) if index < len(entries) else None


def path_cell(entry: dict[str, Any]) -> str:
    """A path summary (trees.path_summary) in a few words: missing, or what it holds."""
    if not entry.get("exists"):
        return "missing"
    if not entry.get("readable", True):
        return "unreadable"
    if entry.get("kind") == "dir":
        partial = "" if entry.get("complete", True) else " (partial listing)"
        return f"{entry.get('entries', '?'):,} entries, {format_bytes(entry.get('bytes') or 0)}{partial}"
    return format_bytes(entry.get("size") or 0)


def _node_row(facts: NodeFacts, offset: Any) -> dict[str, Any]:
    row = facts.to_json()
    row["env"] = {k: _env_value(v) for k, v in row["env"].items()}  # digests of secrets stay private
    row["clock"] = (
        None if offset is None else {"offset_s": offset.offset_s, "uncertainty_s": offset.uncertainty_s}
    )
    return row
