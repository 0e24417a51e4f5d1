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
from nccldoctor.findings import Finding, Severity, make_finding

EVIDENCE_LINES = 6
# FACT groups are the judged ones (versions that differ): a cause, known from the start.
_TIER = {CAUSE: 0, FACT: 0, CRASH: 1, SYMPTOM: 2}


@dataclass
class Group:
    code: str
    events: list[Event] = field(default_factory=list)
    dropped: int = 0  # matches beyond the events kept

    @property
    def first(self) -> Event:
        return min(self.events, key=time_key)

    @property
    def matches(self) -> int:
        return sum(e.count for e in self.events) + self.dropped

    @property
    def tier(self) -> int:
        return min(_TIER[e.role] for e in self.events)

    @property
    def ranks(self) -> list[int]:
        """Global ranks; where the log gives only local ranks (torchrun's "local_rank: 7"), those."""
        ranks = {r for e in self.events for r in e.ranks}
        return sorted(ranks) if ranks else self.local_ranks

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
    return ("rank " if len(set(ranks)) == 1 else "ranks ") + rank_ranges(ranks)


def rank_ranges(ranks: list[int]) -> str:
    """'0-6,8-31': runs of three or more consecutive ranks as ranges, the others listed."""
    runs: list[list[int]] = []
    for r in sorted(set(ranks)):
        if runs and r == runs[-1][-1] + 1:
            runs[-1].append(r)
        else:
            runs.append([r])
    return ",".join(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs)


def time_key(event: Event) -> tuple[float, int]:
    # Untimed events sort by reading order among themselves, before timed ones of later files.
    return (event.who.time if event.who.time is not None else float("-inf"), event.order)


def explain(scan: Scan) -> list[Finding]:
    """The findings for one scan, root cause first, then warnings and info."""
    _attribute_processes(scan)
    _died_of_symptoms(scan.events)
    groups = _groups(scan)
    host_of = _rank_hosts(scan.events)
    findings = {code: _finding(group, host_of) for code, group in groups.items()}
    _add_context(findings, scan)
    warnings = _harmless_loopback(groups, findings, scan)
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


def _harmless_loopback(groups: dict[str, Group], findings: dict[str, Finding], scan: Scan) -> list[Finding]:
    """NCCL on lo or a bridge in a log of one host and no failure is a single-node job that
    works (NCCL_SOCKET_IFNAME=lo in a container): a warning, not the cause of anything."""
    group = groups.get("iface_virtual")
    alone = group is not None and len(groups) == 1 and len(scan.hosts) <= 1
    if not alone or any(e.name != "nccl_iface_virtual" for e in group.events):
        return []
    del groups["iface_virtual"]
    finding = findings.pop("iface_virtual")
    finding.severity = Severity.WARN
    finding.message += "; the log shows one host and no failure: harmless unless the job spans nodes"
    return [finding]


def _groups(scan: Scan) -> dict[str, Group]:
    """One group per code: the same error from many ranks is one finding."""
    groups: dict[str, Group] = {}
    for event in scan.events:
        if event.role != FACT:
            group = groups.setdefault(event.code, Group(event.code, dropped=scan.dropped[event.code]))
            group.events.append(event)
    return groups


def _add_context(findings: dict[str, Finding], scan: Scan) -> None:
    """What other lines of the log add to a finding: the P2P hint, the interface setting, the
    ranks that never reported a timeout."""
    if "collective_timeout" in findings:
        _p2p_hint(findings["collective_timeout"], _named(scan, "nccl_p2p"))
        _silent_ranks(findings["collective_timeout"], scan.ranks)
    if "iface_missing" in findings:
        _ifname_hosts(findings["iface_missing"], _named(scan, "nccl_ifname"))


def _named(scan: Scan, signature: str) -> list[Event]:
    return [e for e in scan.events if e.name == signature]


def _attribute_processes(scan: Scan) -> None:
    """An NCCL line of a process whose rank another of its lines named is that rank's."""
    for e in scan.events:
        if e.who.rank is None and e.who.host and e.who.pid:
            e.who.rank = scan.proc_rank.get((e.who.host, e.who.pid))


def _died_of_symptoms(events: list[Event]) -> None:
    """torchrun's report that a rank exited (exit code 1, SIGABRT) of a rank whose own last
    error was a symptom (a peer gone, a collective timed out) is that symptom ending the
    process, not a crash of its own: it ranks as a symptom, so the rank that did fail first
    (killed, crashed, or a cause) is the root cause."""
    symptomatic = {r for e in events if e.role == SYMPTOM for r in e.ranks}
    for e in events:
        if e.code == "rank_crashed" and e.name in _TORCHRUN_REPORTS and e.who.rank in symptomatic:
            e.role = SYMPTOM


def _rank_hosts(events: list[Event]) -> dict[int, str]:
    """rank -> host from lines that say both (torchrun's block, NCCL lines of a known rank)."""
    return {e.who.rank: e.who.host for e in events if e.who.rank is not None and e.who.host}


def _p2p_hint(finding: Finding, p2p: list[Event]) -> None:
    """A hang where NCCL moves data GPU to GPU over PCIe P2P: ACS or the IOMMU can stall it."""
    hosts = sorted({e.who.host for e in p2p if e.who.host})
    if not p2p:
        return
    finding.evidence["p2p_hosts"] = hosts
    finding.fix += (
        " NCCL used PCIe P2P between GPUs here: if the hang is inside one node, check that PCI ACS "
        "is disabled and the IOMMU is off or in passthrough; NCCL_P2P_DISABLE=1 confirms it "
        "(NCCL docs, Troubleshooting)."
    )


def _ifname_hosts(finding: Finding, settings: list[Event]) -> None:
    """The interface setting NCCL read, and where, when the failure line itself names no host."""
    values = sorted({e.fields["iface"] for e in settings if "iface" in e.fields})
    if values:
        finding.message += f"; the log sets the socket interface to {', '.join(values)}"
        finding.evidence["socket_ifname"] = values
    if not finding.evidence["hosts"]:
        finding.evidence["hosts"] = sorted({e.who.host for e in settings if e.who.host})


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
    if not findings[root.code].ranks:
        _rank_from_torchrun(findings[root.code], groups, root.first)
    for g in ranked[1:]:
        if _is_consequence(g, root):
            _mark_consequence(findings[g.code], findings[root.code], root)
    return [findings[g.code] for g in ranked]


CLOCK_SLACK_S = 1.0  # torchrun's block stamps whole seconds: its crash may read as before its cause


def _is_consequence(group: Group, root: Group) -> bool:
    """Symptoms always follow the root cause; a crash does when it is the root cause's own rank
    (it died of it) or came after it."""
    if group.tier == 2:
        return True
    if group.tier == 0:
        return False  # another cause: reported beside the root cause, not under it
    if set(group.ranks) & set(root.ranks):
        return True
    when, cause_when = time_key(group.first), time_key(root.first)
    return (when[0] + CLOCK_SLACK_S, when[1]) >= cause_when


_TORCHRUN_REPORTS = {"torchrun_block", "elastic_failed", "elastic_exit"}


def _rank_from_torchrun(root: Finding, groups: list[Group], cause: Event) -> None:
    """A cause whose lines name no rank (a bare traceback) belongs to the rank torchrun reports as
    failed first: the report that follows the cause in its file (a node's torchrun prints its
    workers' output, then its own report), else its root-cause entry, else its earliest report."""
    reports = [e for g in groups for e in g.events if e.name in _TORCHRUN_REPORTS]
    if not reports:
        return
    after = [e for e in reports if e.line.file == cause.line.file and e.order > cause.order]
    if after:
        first = min(after, key=lambda e: e.order)
    else:
        first = min(reports, key=lambda e: (not e.root, time_key(e)))
    rank = first.who.rank if first.who.rank is not None else first.who.local_rank
    if rank is None:
        return
    root.ranks = [rank]
    root.evidence["rank_from"] = f"torchrun's failure report ({first.where})"
    if first.who.host and not root.evidence.get("hosts"):
        root.evidence["hosts"] = [first.who.host]
    kind = "rank" if first.who.rank is not None else "local rank"
    root.message += f" ({kind} {rank}, as torchrun reports the first failure)"


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


def _finding(group: Group, host_of: dict[int, str]) -> Finding:
    first = group.first
    ranks = group.ranks
    hosts = sorted(set(group.hosts) | {host_of[r] for r in ranks if r in host_of})
    message = first.message
    evidence: dict = {
        "lines": [f"{e.where}: {e.line.text.strip()[:400]}" for e in sorted(group.events, key=time_key)][
            :EVIDENCE_LINES
        ],
        "matches": group.matches,
        "hosts": hosts,
        "sources": sorted({e.source for e in group.events}),
    }
    local_only = bool(group.local_ranks) and not any(e.ranks for e in group.events)
    if local_only:  # `ranks` are local ones
        evidence["local_ranks"] = group.local_ranks
        message += f" (local rank{'s' if len(group.local_ranks) > 1 else ''} "
        message += f"{','.join(map(str, group.local_ranks))}: the log names no global rank)"
    if group.root_rank is not None:
        evidence["torchrun_root_rank"] = group.root_rank
    timeouts = _timeouts(group, evidence) if group.code == "collective_timeout" else None
    if timeouts:
        message, ranks_said = timeouts, True
    else:
        ranks_said = False
    if group.code == "ib_error":
        evidence["status"] = sorted({e.fields["status"] for e in group.events if "status" in e.fields})
    message = f"{message}{_where([] if ranks_said or local_only else ranks, hosts)}"
    if group.matches > 1:
        message += f"; {group.matches} lines"
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


_COMPONENTS = (("nccl_version", "NCCL"), ("torch_version", "torch"), ("nccl_net_plugin", "NCCL net plugin"))
_INTERNAL = "internal"  # the net plugin state of a host that loads none


def _versions(facts: list[Event]) -> Judged:
    """One version_mismatch for every component whose version differs between hosts; the odd
    hosts are those of the rarer version (on a tie, the older one, or the host without a plugin)."""
    parts, odd, used = [], set(), []
    for name, label in _COMPONENTS:
        mine = [e for e in facts if e.name == name]
        by_version: dict[str, set[str]] = defaultdict(set)
        for e in mine:
            who = e.who.host or (f"rank {e.who.rank}" if e.who.rank is not None else e.line.file)
            by_version[e.fields.get("version") or _INTERNAL].add(who)
        if len(by_version) < 2:
            continue
        parts.append(
            f"{label}: " + "; ".join(f"{v} on {', '.join(sorted(w))}" for v, w in sorted(by_version.items()))
        )
        odd |= by_version[
            min(by_version, key=lambda v: (len(by_version[v]), v != _INTERNAL, _version_key(v)))
        ]
        used += mine
    if not parts:
        return []
    evidence = {
        "hosts": sorted(odd),
        "lines": [f"{e.where}: {e.line.text.strip()[:300]}" for e in used][:EVIDENCE_LINES],
        "matches": len(used),
    }
    ranks = [e.who.rank for e in used if e.who.rank is not None and e.who.host in odd]
    message = f"versions differ between nodes ({' | '.join(parts)}); the odd ones: {', '.join(sorted(odd))}"
    return [(make_finding("version_mismatch", message, ranks=ranks, evidence=evidence), used)]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version)[:4])


def _fallback(facts: list[Event]) -> Judged:
    """Sockets on a host (or file) whose log shows IB hardware and IB not disabled on purpose."""
    socket, ib_seen, searched, disabled = set(), set(), set(), set()
    socket_ranks: dict[str, int] = {}
    lines: dict[str, str] = {}
    for e in facts:
        who = e.who.host or e.line.file
        if e.name == "nccl_network" and e.fields.get("iface", "").lower() == "socket":
            socket.add(who)
            if e.who.rank is not None:
                socket_ranks.setdefault(who, e.who.rank)
            lines.setdefault(who, f"{e.where}: {e.line.text.strip()[:300]}")
        elif e.name == "nccl_network" and "No device" in e.fields.get("device", ""):
            searched.add(who)
        elif e.name == "nccl_network" and e.fields.get("device"):
            ib_seen.add(who)
        elif e.name == "nccl_ib_disabled" and e.fields.get("status") == "1":
            disabled.add(who)
    fell = sorted((socket & ib_seen) - disabled)
    if fell:
        message = (
            f"NCCL used sockets on {', '.join(fell)} although the log shows InfiniBand/RoCE devices there"
        )
        evidence = {"hosts": fell, "lines": [lines[w] for w in fell]}
        ranks = sorted(socket_ranks[w] for w in fell if w in socket_ranks)
        return [(make_finding("nccl_transport_fallback", message, ranks=ranks, evidence=evidence), [])]
    # NET/IB looked and found nothing: a fallback if these nodes have IB, nothing on Ethernet-only
    # ones, which the log cannot tell apart: say it, as info.
    blind = sorted((socket & searched) - disabled)
    if not blind:
        return []
    message = (
        f"NCCL used sockets on {', '.join(blind)}: NET/IB found no device there. If these nodes have "
        "InfiniBand/RoCE, NCCL fell back to TCP (a large slowdown); on Ethernet-only nodes this is normal"
    )
    evidence = {"hosts": blind, "lines": [lines[w] for w in blind]}
    finding = make_finding("nccl_transport_fallback", message, evidence=evidence, severity=Severity.INFO)
    return [(finding, [])]


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
