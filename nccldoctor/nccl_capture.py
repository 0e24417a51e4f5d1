"""Capture NCCL's own INFO log for the bench's process group, to compare with the prediction.

NCCL reads NCCL_DEBUG, NCCL_DEBUG_SUBSYS and NCCL_DEBUG_FILE once, when it first initialises in
a process. So the bench sets them just around its own init_process_group (eager NCCL init:
device_id is passed) and restores the environment afterwards, so worker processes of a sweep
start from the user's environment. torch creates the communicator inside that call only when
the backend supports splitting (NCCL 2.18 and later); otherwise NCCL starts at the first
collective, after the variables were put back, and the nccl section's notes say so.
A user who already logs NCCL keeps control:
- NCCL_DEBUG unset: INFO for INIT,NET,BOOTSTRAP,ENV into a private file per process (`%h.%p`),
  read and removed;
- NCCL_DEBUG=INFO/TRACE with NCCL_DEBUG_FILE: their files are read, not touched;
- NCCL_DEBUG set otherwise (WARN, or INFO to stdout): nothing to read; the report says why.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nccldoctor.nccl_log import NcclLogSummary, parse_nccl_log_files

OWN_PATTERN = "nccl.%h.%p.log"
# The subsystems whose lines nccl_log reads: recent NCCL logs "Bootstrap : Using" under
# BOOTSTRAP and "NCCL_* set by environment" under ENV (its own default is INIT,BOOTSTRAP,ENV);
# NET has the transport and socket lines. Older NCCL ignores names it does not know.
CAPTURE_SUBSYSTEMS = "INIT,NET,BOOTSTRAP,ENV"


@dataclass
class NcclCapture:
    pattern: str | None  # NCCL_DEBUG_FILE as NCCL will expand it (None: nothing to read)
    set_env: dict[str, str] = field(default_factory=dict)  # set around init, then restored
    note: str | None = None  # why nothing is captured
    own_directory: Path | None = None  # ours to delete after reading


def plan_capture(
    environ: Mapping[str, str], directory: Path, subsystems: str = CAPTURE_SUBSYSTEMS
) -> NcclCapture:
    debug = environ.get("NCCL_DEBUG", "").strip()
    if not debug:
        pattern = str(directory / OWN_PATTERN)
        env = {"NCCL_DEBUG": "INFO", "NCCL_DEBUG_SUBSYS": subsystems, "NCCL_DEBUG_FILE": pattern}
        return NcclCapture(pattern, env, own_directory=directory)
    user_file = environ.get("NCCL_DEBUG_FILE", "").strip()
    if debug.upper() in ("INFO", "TRACE") and user_file:
        return NcclCapture(user_file, note=_subsystems_note(environ.get("NCCL_DEBUG_SUBSYS", "")))
    return NcclCapture(
        None,
        note=f"NCCL_DEBUG={debug} is set without NCCL_DEBUG_FILE (or not at INFO): NCCL's log went "
        "to the job's output, so what NCCL chose was not checked",
    )


def _subsystems_note(subsys: str) -> str | None:
    """Why a user's own NCCL_DEBUG_SUBSYS may hide lines read here (None: it hides none).

    NCCL's rule: a comma list, case-insensitive; a leading ^ turns it into "all but these"."""
    subsys = subsys.strip().upper()
    if not subsys:
        return None  # NCCL's default: INIT,BOOTSTRAP,ENV in recent releases
    names = {name.strip() for name in subsys.lstrip("^").split(",")}
    wanted = CAPTURE_SUBSYSTEMS.split(",")
    if subsys.startswith("^"):
        missing = [name for name in wanted if name in names or "ALL" in names]
    else:
        missing = [] if "ALL" in names else [name for name in wanted if name not in names]
    if not missing:
        return None
    listed = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    return f"NCCL_DEBUG_SUBSYS={subsys} leaves out {listed} (lines read here may be missing)"


@contextlib.contextmanager
def environment(updates: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the duration of a block, then put back what was there."""
    before = {name: os.environ.get(name) for name in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def this_process_files(pattern: str, pid: int) -> list[str]:
    """NCCL's %p is the pid and %h the short hostname (before the first dot): match it loosely."""
    return sorted(glob.glob(pattern.replace("%h", "*").replace("%p", str(pid))))


def debug_files(set_env: Mapping[str, str], environ: Mapping[str, str], pid: int) -> list[Path]:
    """The files NCCL logs to in process `pid`: the bench's own capture (`set_env`, what init
    set) or the user's NCCL_DEBUG_FILE while NCCL_DEBUG is set; [] when it logs to none."""
    pattern = set_env.get("NCCL_DEBUG_FILE")
    if pattern is None and environ.get("NCCL_DEBUG", "").strip():
        pattern = environ.get("NCCL_DEBUG_FILE", "").strip() or None
    return [Path(name) for name in this_process_files(pattern, pid)] if pattern else []


def read_capture(capture: NcclCapture, pid: int) -> NcclLogSummary | None:
    """What this process's NCCL logged; None when there is nothing to read."""
    if capture.pattern is None:
        return None
    files = this_process_files(capture.pattern, pid)
    return parse_nccl_log_files(files) if files else None


def judge_captures(
    published: Mapping[int, dict],
    node_of: Mapping[int, int],
    nodes: list,
    predicted: Mapping[int, str | None],
) -> tuple[list, dict]:
    """Rank 0: every rank's published summary, merged per node, judged against the inventory.

    `published`: rank -> {"summary": NcclLogSummary json or None, "note": str or None};
    `nodes`: the network check's NodeNet per node (IB ports, env); `predicted`: node -> the
    interface nccldoctor predicted NCCL would use.
    """
    from nccldoctor.nccl_log import judge_nccl, merge_summaries

    by_node: dict[int, list[NcclLogSummary]] = {}
    notes = sorted({p["note"] for p in published.values() if p.get("note")})
    for rank, entry in published.items():
        if entry.get("summary"):
            by_node.setdefault(node_of[rank], []).append(NcclLogSummary.from_json(entry["summary"]))
    logs = {node: merge_summaries(parts) for node, parts in by_node.items()}
    inventory = {n.node_rank: n for n in nodes}
    findings = judge_nccl(
        logs,
        ib_present={n: bool(inventory[n].ib_active) for n in logs if n in inventory},
        env={n: inventory[n].env for n in logs if n in inventory},
        predicted_iface={n: predicted.get(n) for n in logs},
        ib_devices={n: inventory[n].ib_active for n in logs if n in inventory},
    )
    section = {
        "captured": bool(logs),
        "notes": notes,
        "nodes": {str(n): log.to_json() for n, log in logs.items()},
    }
    return findings, section
