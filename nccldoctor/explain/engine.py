"""Events -> findings, root cause first.

1. Collapse: every event of one code is one finding listing its ranks and hosts (the same
   error repeated by 32 ranks is one line, not 32).
2. Judge the facts across hosts: NCCL/torch versions that differ (version_mismatch), sockets
   on a host whose log shows InfiniBand hardware (nccl_transport_fallback).
3. Root cause: among the failures, a specific cause (GPU error, wrong interface, ...) beats a
   bare crash, which beats a symptom (watchdog timeouts, peers gone); torchrun's "first
   observed failure" rank is preferred; ties go to the earliest event (timestamp, else line
   order). Crashes and symptoms after the root cause are marked its consequences.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from nccldoctor.explain.events import Event, Scan
from nccldoctor.explain.signatures import CAUSE, CRASH, FACT, SYMPTOM
from nccldoctor.findings import CATALOG, Finding, Severity, make_finding

EVIDENCE_LINES = 6
# FACT groups are the judged ones (versions that differ): a cause, known from the start.
_TIER = {CAUSE: 0, FACT: 0, CRASH: 1, SYMPTOM: 2}


@dataclass
class Group:
    code: str
    events: list[Event] = field(default_factory=list)

    @property
    def first(self) -> Event:
        return min(self.events, key=time_key)

    @property
    def tier(self) -> int:
        return min(_TIER[e.role] for e in self.events)

    @property
    def ranks(self) -> list[int]:
        return sorted({e.who.rank for e in self.events if e.who.rank is not None})

    @property
    def local_ranks(self) -> list[int]:
        return sorted({e.who.local_rank for e in self.events if e.who.local_rank is not None})

    @property
    def hosts(self) -> list[str]:
        return sorted({e.who.host for e in self.events if e.who.host})

    @property
    def root_rank(self) -> int | None:
        return next((e.who.rank for e in self.events if e.root), None)


def ranks_text(ranks: list[int]) -> str:
    """'rank 3' or 'ranks 0-6,8-31': runs of consecutive ranks as ranges (32 ranks in one line)."""
    runs: list[list[int]] = []
    for r in sorted(set(ranks)):
        if runs and r == runs[-1][-1] + 1:
            runs[-1].append(r)
        else:
            runs.append([r])
    text = ",".join(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs)
    return ("rank " if len(set(ranks)) == 1 else "ranks ") + text


def time_key(event: Event) -> tuple[float, int]:
    # Untimed events sort by reading order among themselves, before timed ones of later files.
    return (event.who.time if event.who.time is not None else float("-inf"), event.order)


def explain(scan: Scan) -> list[Finding]:
    """The findings for one scan, root cause first."""
    groups: dict[str, Group] = {}
    for event in scan.events:
        if event.role != FACT:
            groups.setdefault(event.code, Group(event.code)).events.append(event)
    findings = {code: _finding(group) for code, group in groups.items()}
    if "collective_timeout" in findings:
        _silent_ranks(findings["collective_timeout"], scan.ranks)
    warnings = []
    for finding, events in _judge_facts([e for e in scan.events if e.role == FACT]):
        if finding.severity is Severity.FAIL:  # a cause like any other: it takes part in the order
            groups[finding.code] = Group(finding.code, events)
            findings[finding.code] = finding
        else:
            warnings.append(finding)
    ordered = _order(list(groups.values()), findings)
    if not ordered and scan.failure_hinted:
        ordered.append(_unexplained(scan))
    return ordered + warnings


def _order(groups: list[Group], findings: dict[str, Finding]) -> list[Finding]:
    if not groups:
        return []
    torchrun_root = next((g.root_rank for g in groups if g.root_rank is not None), None)

    def key(g: Group) -> tuple[int, int, tuple[float, int]]:
        named = 0 if torchrun_root is not None and torchrun_root in g.ranks else 1
        return (g.tier, named, time_key(g.first))

    ranked = sorted(groups, key=key)
    root = ranked[0]
    findings[root.code].evidence["root_cause"] = True
    for g in ranked[1:]:
        if (g.tier >= 1 and time_key(g.first) >= time_key(root.first)) or g.tier == 2:
            _mark_consequence(findings[g.code], findings[root.code], root)
    return [findings[g.code] for g in ranked]


def _mark_consequence(finding: Finding, root: Finding, root_group: Group) -> None:
    where = _where(root_group.ranks, root_group.hosts)
    finding.evidence["consequence_of"] = root.code
    finding.message += f" - a consequence of the root cause: {root.code}{where}"


def _where(ranks: list[int], hosts: list[str]) -> str:
    parts = []
    if ranks:
        parts.append(ranks_text(ranks))
    if hosts:
        parts.append("on " + ", ".join(hosts[:8]) + (" ..." if len(hosts) > 8 else ""))
    return (" (" + " ".join(parts) + ")") if parts else ""


def _finding(group: Group) -> Finding:
    first = group.first
    ranks, hosts = group.ranks, group.hosts
    message = first.message
    evidence: dict = {
        "lines": [f"{e.where}: {e.line.text.strip()[:400]}" for e in sorted(group.events, key=time_key)][
            :EVIDENCE_LINES
        ],
        "matches": len(group.events),
        "hosts": hosts,
        "sources": sorted({e.source for e in group.events}),
    }
    if group.local_ranks and not ranks:
        evidence["local_ranks"] = group.local_ranks
        message += f" (local ranks {','.join(map(str, group.local_ranks))})"
    if group.root_rank is not None:
        evidence["torchrun_root_rank"] = group.root_rank
    timeouts = _timeouts(group, evidence) if group.code == "collective_timeout" else None
    if timeouts:
        message, ranks_said = timeouts, True
    else:
        ranks_said = False
    if group.code == "ib_error":
        evidence["status"] = sorted({e.fields["status"] for e in group.events if "status" in e.fields})
    message = f"{message}{_where([] if ranks_said else ranks, hosts)}"
    if len(group.events) > 1:
        message += f"; {len(group.events)} lines"
    return make_finding(group.code, message, ranks=ranks, evidence=evidence, fix=first.fix)


_PG = re.compile(r"\[PG (?:ID )?(\d+)")


def _timeouts(group: Group, evidence: dict) -> str | None:
    """Which ranks timed out on which collective, and which ones are behind (the suspects).

    Sequence numbers count per process group, so they are compared within one group only
    (`[PG 1 Rank 3]`; lines that name none are taken as one group)."""
    seq: dict[tuple[str, int], int] = {}
    done: dict[tuple[str, int], int] = {}
    ops: set[str] = set()
    for e in group.events:
        if e.who.rank is None:
            continue
        m = _PG.search(e.line.text)
        key = (m[1] if m else "", e.who.rank)
        if "seq" in e.fields:
            seq[key] = min(seq.get(key, 1 << 62), int(e.fields["seq"]))
        if "last_completed" in e.fields:
            done[key] = min(done.get(key, 1 << 62), int(e.fields["last_completed"]))
        if "op" in e.fields:
            ops.add(e.fields["op"])
    if not seq:
        return None
    behind = _behind(done) or _behind(seq)
    timed_out = sorted({rank for _, rank in seq})
    evidence.update(
        {
            "sequence": {f"{pg}:{rank}" if pg else str(rank): n for (pg, rank), n in seq.items()},
            "last_completed": {f"{pg}:{rank}" if pg else str(rank): n for (pg, rank), n in done.items()},
            "ops": sorted(ops),
            "suspects": behind,
        }
    )
    numbers = sorted(set(seq.values()))
    at = f"#{numbers[0]}" if len(numbers) == 1 else f"#{numbers[0]}..#{numbers[-1]}"
    text = f"{ranks_text(timed_out)} timed out in {'/'.join(sorted(ops)) or 'a collective'} {at}"
    if behind:
        text += f"; {ranks_text(behind)} behind (lower sequence number): the suspects"
    return text


def _silent_ranks(finding: Finding, seen: set[int]) -> None:
    """Ranks the logs show that reported no timeout: they were not waiting, so they are suspects."""
    silent = sorted(seen - set(finding.ranks))
    if finding.ranks and silent:
        finding.evidence["silent_ranks"] = silent
        finding.evidence.setdefault("suspects", [])
        finding.evidence["suspects"] = sorted(set(finding.evidence["suspects"]) | set(silent))
        finding.message += f"; {ranks_text(silent)} reported no timeout (not waiting: suspects)"


def _behind(numbers: dict[tuple[str, int], int]) -> list[int]:
    """The ranks at the lowest number of their process group, where the group's ranks differ."""
    behind: set[int] = set()
    for pg in {pg for pg, _ in numbers}:
        mine = {rank: n for (g, rank), n in numbers.items() if g == pg}
        if len(set(mine.values())) > 1:
            low = min(mine.values())
            behind |= {rank for rank, n in mine.items() if n == low}
    return sorted(behind)


Judged = list[tuple[Finding, list[Event]]]


def _judge_facts(facts: list[Event]) -> Judged:
    return _versions(facts) + _fallback(facts)


def _versions(facts: list[Event]) -> Judged:
    found: Judged = []
    for name, label in (("nccl_version", "NCCL"), ("torch_version", "torch")):
        mine = [e for e in facts if e.name == name]
        by_version: dict[str, set[str]] = defaultdict(set)
        for e in mine:
            who = e.who.host or (f"rank {e.who.rank}" if e.who.rank is not None else e.line.file)
            by_version[e.fields["version"]].add(who)
        if len(by_version) < 2:
            continue
        where = "; ".join(f"{v} on {', '.join(sorted(w))}" for v, w in sorted(by_version.items()))
        first_per_version = {e.fields["version"]: e for e in reversed(mine)}
        evidence = {
            "versions": {v: sorted(w) for v, w in by_version.items()},
            "hosts": sorted({e.who.host for e in mine if e.who.host}),
            "lines": [f"{e.where}: {e.line.text.strip()[:300]}" for e in first_per_version.values()],
        }
        ranks = [e.who.rank for e in mine if e.who.rank is not None]
        message = f"{label} versions differ between ranks: {where}"
        found.append((make_finding("version_mismatch", message, ranks=ranks, evidence=evidence), mine))
    return found


def _fallback(facts: list[Event]) -> Judged:
    """Sockets on a host (or file) whose log shows IB hardware and IB not disabled on purpose."""
    socket, ib_seen, disabled = set(), set(), set()
    lines: dict[str, str] = {}
    for e in facts:
        who = e.who.host or e.line.file
        if e.name == "nccl_network" and e.fields.get("iface", "").lower() == "socket":
            socket.add(who)
            lines.setdefault(who, f"{e.where}: {e.line.text.strip()[:300]}")
        elif e.name == "nccl_network" and e.fields.get("device") and "No device" not in e.fields["device"]:
            ib_seen.add(who)
        elif e.name == "nccl_ib_disabled" and e.fields.get("status") == "1":
            disabled.add(who)
    fell = sorted((socket & ib_seen) - disabled)
    if not fell:
        return []
    message = f"NCCL used sockets on {', '.join(fell)} although the log shows InfiniBand/RoCE devices there"
    evidence = {"hosts": fell, "lines": [lines[w] for w in fell]}
    return [(make_finding("nccl_transport_fallback", message, evidence=evidence), [])]


def _unexplained(scan: Scan) -> Finding:
    last = list(scan.error_lines)
    tail = last[-1] if last else "(no error line kept)"
    return make_finding(
        "unexplained_failure",
        f"the logs show a failure no signature explains; the last error line: {tail}",
        evidence={"last_error_lines": last},
    )


def is_unexplained(findings: list[Finding]) -> bool:
    return bool(findings) and findings[0].code == "unexplained_failure"


__all__ = ["CATALOG", "explain", "is_unexplained"]
