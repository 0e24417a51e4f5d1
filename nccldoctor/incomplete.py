"""Why a run did not complete, from what each rank left in the store (see supervisor.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from nccldoctor.analysis import NodesOf, ranks_text
from nccldoctor.explain.partial import explain_rank_errors
from nccldoctor.findings import Finding, make_finding
from nccldoctor.supervisor import LIVENESS_WINDOW_S, Cause, RankState

LabelOf = Callable[[int], str]
_TIMEOUT_KINDS = {"deadline", "timeout"}


def diagnose_incomplete(
    cause: Cause,
    states: list[RankState],
    label_of: LabelOf,
    nodes_of: NodesOf,
    nccl_logs: Iterable[Path] = (),
) -> list[Finding]:
    """The findings that explain an incomplete run, most fundamental first.

    A crash explains everything after it (the survivors' collectives fail, the launcher
    kills them), so late or interrupted ranks are only reported when nobody crashed. A cause
    the explain catalogue finds in a rank's last error (CUDA out of memory, a missing socket
    interface, ...) comes first of all, and so does one in `nccl_logs`, the NCCL log this
    process captured (an IB completion error, a missing interface).
    """
    causes = _explained_causes(states, nodes_of, list(nccl_logs))
    return causes + _diagnose(cause, states, label_of, nodes_of)


def _explained_causes(states: list[RankState], nodes_of: NodesOf, nccl_logs: list[Path]) -> list[Finding]:
    errors = {s.rank: s.status["message"] for s in states if s.status and s.status.get("message")}
    findings = explain_rank_errors(errors, nccl_logs)
    read = "the ranks' last error messages" + (" and the NCCL log this rank captured" if nccl_logs else "")
    for f in findings:
        f.nodes = nodes_of(f.ranks) if f.ranks else []
        f.evidence["from"] = f"{read} (nccldoctor explain's catalogue)"
    return findings


def _diagnose(cause: Cause, states: list[RankState], label_of: LabelOf, nodes_of: NodesOf) -> list[Finding]:
    findings = _crashes(states, label_of, nodes_of)
    missing = [s.rank for s in states if not s.joined]
    if missing:
        findings.append(
            make_finding(
                "rank_timeout",
                f"{ranks_text(missing)} never joined the run (no heartbeat at all)",
                ranks=missing,
                nodes=nodes_of(missing),
                evidence={"never_joined": missing},
            )
        )
    if findings:
        return findings
    kinds = {s.status["kind"] for s in states if s.status} | {cause.root_kind}
    if kinds & _TIMEOUT_KINDS:
        return [_late_ranks(states, label_of, nodes_of)]
    if "signal" in kinds:
        return [_interrupted(states, nodes_of)]
    return [_collective_errors(states, label_of, nodes_of, cause)]


# Process states (psutil's words) of a rank that exists but does not run: SIGSTOP/ptrace (T),
# or uninterruptible sleep in the kernel (D).
FROZEN_STATES = frozenset({"stopped", "disk-sleep"})
_STATE_TEXT = {
    "stopped": "stopped (state T: SIGSTOP, a debugger, a paused VM or container)",
    "disk-sleep": "stuck in the kernel (state D: a hung driver, GPU or filesystem)",
}


def seen_states(states: list[RankState]) -> dict[int, str]:
    """What the ranks that posted a status saw of their node's other ranks' processes."""
    seen: dict[int, str] = {}
    for state in states:
        for rank, process in ((state.status or {}).get("local") or {}).items():
            seen.setdefault(int(rank), process)
    return seen


def _crashes(states: list[RankState], label_of: LabelOf, nodes_of: NodesOf) -> list[Finding]:
    silent = [s for s in states if s.joined and not s.alive]
    seen = seen_states(states)
    frozen = [s for s in silent if seen.get(s.rank) in FROZEN_STATES]
    lost = [s for s in silent if s not in frozen]
    findings = [_frozen(frozen, seen, label_of, nodes_of)] if frozen else []
    if lost:
        ranks = [s.rank for s in lost]
        where = "; ".join(f"rank {s.rank} in {label_of(s.step)}" for s in lost)
        gone = sorted(s.rank for s in lost if seen.get(s.rank) in ("gone", "zombie"))
        how = "its process is gone" if gone == ranks else "killed, crashed, frozen or cut off from the store"
        findings.append(
            make_finding(
                "rank_crashed",
                f"{ranks_text(ranks)} stopped without a word (no heartbeat for "
                f"{LIVENESS_WINDOW_S:g} s, no exit status: {how}): {where}",
                ranks=ranks,
                nodes=nodes_of(ranks),
                evidence={
                    "last_step": {s.rank: label_of(s.step) for s in lost},
                    "process_state": {s.rank: seen[s.rank] for s in lost if s.rank in seen},
                },
            )
        )
    for s in states:
        if s.status and s.status["kind"] == "error":
            findings.append(
                make_finding(
                    "rank_crashed",
                    f"rank {s.rank} failed in {s.status['label']}: {s.status['message']}",
                    ranks=[s.rank],
                    nodes=nodes_of([s.rank]),
                    evidence={"step": s.status["label"], "error": s.status["message"]},
                )
            )
    return findings


def _frozen(frozen: list[RankState], seen: dict[int, str], label_of: LabelOf, nodes_of: NodesOf) -> Finding:
    ranks = [s.rank for s in frozen]
    what = "; ".join(f"rank {s.rank} is {_STATE_TEXT[seen[s.rank]]}, in {label_of(s.step)}" for s in frozen)
    return make_finding(
        "rank_frozen",
        f"{ranks_text(ranks)} froze: no heartbeat, but the process is still there on its node ({what})",
        ranks=ranks,
        nodes=nodes_of(ranks),
        evidence={
            "last_step": {s.rank: label_of(s.step) for s in frozen},
            "process_state": {s.rank: seen[s.rank] for s in frozen},
        },
    )


def _late_ranks(states: list[RankState], label_of: LabelOf, nodes_of: NodesOf) -> Finding:
    alive = [s for s in states if s.alive]
    front = max(s.step for s in alive)
    late = [s for s in alive if s.step < front]
    evidence = {"waiting_in": label_of(front), "steps": {s.rank: label_of(s.step) for s in alive}}
    if late:
        ranks = [s.rank for s in late]
        where = "; ".join(f"rank {s.rank} was still in {label_of(s.step)}" for s in late)
        message = (
            f"deadline passed: {ranks_text(ranks)} had not arrived at {label_of(front)}, "
            f"where the others waited ({where})"
        )
    else:
        ranks = [s.rank for s in alive]
        message = (
            f"deadline passed: {label_of(front)} never completed; no rank was behind "
            f"({ranks_text(ranks)} all waited in it)"
        )
    return make_finding("rank_timeout", message, ranks=ranks, nodes=nodes_of(ranks), evidence=evidence)


def _interrupted(states: list[RankState], nodes_of: NodesOf) -> Finding:
    signalled = [s for s in states if s.status and s.status["kind"] == "signal"]
    ranks = [s.rank for s in signalled]
    what = sorted({s.status["message"] for s in signalled})
    steps = {s.rank: s.status["label"] for s in signalled}
    where = sorted(set(steps.values()))
    return make_finding(
        "run_interrupted",
        f"stopped by a signal ({', '.join(what)}) on {ranks_text(ranks)}, in {', '.join(where)}",
        ranks=ranks,
        nodes=nodes_of(ranks),
        evidence={"signals": what, "steps": steps},
    )


def _collective_errors(
    states: list[RankState], label_of: LabelOf, nodes_of: NodesOf, cause: Cause
) -> Finding:
    failed = [s for s in states if s.status and s.status["kind"] == "comm"]
    ranks = [s.rank for s in failed]
    errors = {s.rank: s.status["message"] for s in failed}
    first = failed[0].status if failed else {"label": label_of(-1), "message": cause.message}
    return make_finding(
        "collective_error",
        f"{first['label']} failed on {ranks_text(ranks)}: {first['message']}",
        ranks=ranks,
        nodes=nodes_of(ranks),
        evidence={"errors": errors},
    )
