"""What NCCL chose per collective and size, and whether it took a setting, from its own log.

With NCCL_DEBUG_SUBSYS=TUNING, rank 0 logs the algorithm and protocol of every collective it
enqueues. Two spellings, from NCCL's enqueue.cc:
- 2.23 and later: `AllReduce: 4194304 Bytes -> Algo Tree proto Simple channel{Lo..Hi}={0..7}`
  (some builds add ` comm 0x...`);
- 2.20-2.22: `4194304 Bytes -> Algo 1 proto 2 time 20.500000`, numbers indexing NCCL's
  algorithm (Tree, Ring, CollNetDirect, CollNetChain, NVLS, NVLSTree, PAT) and protocol
  (LL, LL128, Simple) tables, with no collective named.
With ENV, NCCL logs `NCCL_X set by environment to Y` for each variable it reads. A swept
NCCL_* variable that NCCL never says it read, an NCCL_ALGO / NCCL_PROTO that the chosen
algorithms contradict, or a WARN line naming the variable: the setting was ignored or rejected,
and its numbers say nothing about it.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from nccldoctor.nccl_capture import NcclCapture, this_process_files
from nccldoctor.nccl_log import parse_nccl_log

TUNING_SUBSYSTEMS = "INIT,ENV,TUNING"
ALGORITHMS = ("Tree", "Ring", "CollNetDirect", "CollNetChain", "NVLS", "NVLSTree", "PAT")
PROTOCOLS = ("LL", "LL128", "Simple")

_NAMED = re.compile(r"NCCL INFO (\w+): (\d+) Bytes -> Algo (\w+) proto (\w+)")
_NUMBERED = re.compile(r"NCCL INFO (\d+) Bytes -> Algo (\d+) proto (\d+)")
_WARN = re.compile(r"NCCL WARN (.*)")


def parse_tuning(text: str) -> list[dict[str, Any]]:
    """One entry per (collective, bytes, algorithm, protocol) with how many calls chose it."""
    seen: Counter[tuple[str, int, str, str]] = Counter()
    for line in text.splitlines():
        named = _NAMED.search(line)
        if named:
            seen[(named[1], int(named[2]), named[3], named[4])] += 1
            continue
        numbered = _NUMBERED.search(line)
        if numbered:
            seen[("?", int(numbered[1]), _name(ALGORITHMS, numbered[2]), _name(PROTOCOLS, numbered[3]))] += 1
    return [
        {"collective": coll, "bytes": size, "algo": algo, "proto": proto, "calls": calls}
        for (coll, size, algo, proto), calls in sorted(seen.items(), key=lambda kv: (kv[0][0], kv[0][1]))
    ]


def _name(table: tuple[str, ...], index: str) -> str:
    number = int(index)
    return table[number] if number < len(table) else f"#{number}"


def warnings(text: str) -> list[str]:
    return [m[1].strip() for m in map(_WARN.search, text.splitlines()) if m]


def read_child_log(capture: NcclCapture, pid: int) -> dict[str, Any] | None:
    """A finished child's log: what NCCL read from the environment, chose, and warned about."""
    files = this_process_files(capture.pattern or "", pid)
    if not files:
        return None
    text = "\n".join(Path(f).read_text(errors="replace") for f in files)
    return {"env": parse_nccl_log(text).env, "tuning": parse_tuning(text), "warnings": warnings(text)}


def ignored_settings(env: dict[str, str], log: dict[str, Any]) -> list[str]:
    """Why NCCL did not apply (or refused) each NCCL_* variable of a setting; [] when it did."""
    reasons = []
    for name, value in sorted(env.items()):
        if not name.startswith("NCCL_"):
            continue
        warned = [w for w in log.get("warnings", []) if name in w]
        if warned:
            reasons.append(f"{name}={value}: NCCL warned: {warned[0]}")
        elif log.get("env") and name not in log["env"]:
            reasons.append(f"{name}={value}: NCCL never said it read {name} (not used by this job's path)")
        else:
            reasons += _contradicted(name, value, log.get("tuning", []))
    return reasons


def _contradicted(name: str, value: str, tuning: list[dict[str, Any]]) -> list[str]:
    """A plain single NCCL_ALGO / NCCL_PROTO value that all_reduce's choices do not follow."""
    field = {"NCCL_ALGO": "algo", "NCCL_PROTO": "proto"}.get(name)
    if field is None or any(c in value for c in ",^:;"):
        return []  # lists, exclusions and per-collective forms: not judged
    chosen = {t[field] for t in tuning if t["collective"] in ("AllReduce", "?")}
    others = sorted(c for c in chosen if c.lower() != value.lower())
    if others and len(others) == len(chosen):
        return [f"{name}={value}: NCCL chose {', '.join(others)} for all_reduce instead"]
    return []
