"""Slurm hostlists: `gpu003,gpu017,gpu018` <-> `gpu[003,017-018]`.

The exclude list is handed to Slurm (`srun --exclude=`, `scontrol update nodename=`), so it is
written in Slurm's own compressed form. As in Slurm, a host's *last* number is the one that
ranges (`rack1-node07`: prefix `rack1-node`), a range keeps the zero-padding of its lower bound
(`[009-011]` is 009, 010, 011; `[9-10]` is 9, 10), and whatever follows the number stays as a
suffix (`n[1-2]-ib`). Hosts without a digit stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import groupby

_LAST_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")
_BRACKETED = re.compile(r"^([^\[\]]*)\[([^\[\]]+)\]([^\[\]]*)$")
_RANGE = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")
MAX_RANGE = 64 * 1024  # hosts in one range: more is a typo, not a cluster


def _split(host: str) -> tuple[str, str, str] | None:
    """(prefix, digits, suffix) around the host's last number; None when it has no digit."""
    match = _LAST_NUMBER.match(host)
    return (match[1], match[2], match[3]) if match else None


def sort_key(host: str) -> tuple:
    """Natural order: gpu2 before gpu10, hosts without a number by name."""
    parts = _split(host)
    if parts is None:
        return (host, "", -1, "")
    prefix, digits, suffix = parts
    return (prefix, suffix, int(digits), digits)


def _fits(digits: str, width: int) -> bool:
    """Whether a range padded to `width` (its lower bound's length) writes this number as `digits`."""
    return f"{int(digits):0{width}d}" == digits


def _ranges(numbers: list[str]) -> list[str]:
    """['003', '017', '018'] -> ['003', '017-018']: consecutive numbers that keep their padding."""
    runs: list[list[str]] = []
    for digits in numbers:
        run = runs[-1] if runs else None
        if run and int(digits) == int(run[-1]) + 1 and _fits(digits, len(run[0])):
            run.append(digits)
        else:
            runs.append([digits])
    return [run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs]


def compress(hosts: Iterable[str]) -> str:
    """The Slurm hostlist of these hosts (duplicates dropped, natural order): 'gpu[003,017-018]'."""
    unique = sorted(set(hosts), key=sort_key)
    parts = []
    for has_number, group in groupby(unique, key=lambda host: _split(host) is not None):
        if not has_number:
            parts.extend(group)
            continue
        split = [_split(host) for host in group]
        for (prefix, suffix), same in groupby(split, key=lambda p: (p[0], p[2])):
            numbers = [digits for _, digits, _ in same]
            if len(numbers) == 1:
                parts.append(f"{prefix}{numbers[0]}{suffix}")
            else:
                parts.append(f"{prefix}[{','.join(_ranges(numbers))}]{suffix}")
    return ",".join(parts)


def _top_level(hostlist: str) -> list[str]:
    """Split at the commas outside brackets: 'a[1,3],b' -> ['a[1,3]', 'b']."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(hostlist):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth not in (0, 1):
            raise ValueError(f"unbalanced brackets in hostlist {hostlist!r}")
        if char == "," and depth == 0:
            items.append(hostlist[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced brackets in hostlist {hostlist!r}")
    items.append(hostlist[start:])
    return [item.strip() for item in items if item.strip()]


def _expand_range(text: str, item: str) -> list[str]:
    match = _RANGE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} in {item!r} is not a number or a range like 017-018")
    low, high = match[1], match[2] or match[1]
    if int(high) < int(low):
        raise ValueError(f"range {text!r} in {item!r} runs backwards")
    if int(high) - int(low) >= MAX_RANGE:  # a typo must not build 10^11 names in memory
        raise ValueError(f"range {text!r} in {item!r} holds more than {MAX_RANGE} hosts")
    return [f"{n:0{len(low)}d}" for n in range(int(low), int(high) + 1)]


def expand(hostlist: str) -> list[str]:
    """Slurm's hostlist back into hosts, in its order: 'gpu[003,017-018]' -> gpu003, gpu017, gpu018.
    Raises ValueError on what Slurm would not read (unbalanced or nested brackets, bad ranges)."""
    hosts = []
    for item in _top_level(hostlist):
        if "[" not in item and "]" not in item:
            hosts.append(item)
            continue
        match = _BRACKETED.match(item)
        if not match:
            raise ValueError(f"{item!r}: one [range] per host name is supported")
        prefix, ranges, suffix = match.groups()
        for text in ranges.split(","):
            hosts += [f"{prefix}{digits}{suffix}" for digits in _expand_range(text, item)]
    return hosts
