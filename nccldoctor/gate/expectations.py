"""The cluster's own bar (`--expect FILE`): the TOML file, its schema, and its rules.

A file says what this cluster should deliver; every number in it becomes a Rule that knows
where it was written (file, dotted key, line), so a finding can cite it. The schema:

    description = "8x H100 SXM, NVLink, 8x 400G InfiniBand"   # optional, shown in the report
    [job]                   nodes, gpus_per_node, nics_per_node        (whole numbers)
    [probes.<collective>]   min_busbw_gbps (at the largest size measured),
                            max_latency_us (at the smallest size measured),
                            min_share_of_line_rate (0-1, the peak busbw over the NIC line rate)
    [probes.<collective>.at."<size>"]   min_busbw_gbps, max_latency_us at that size ("1G", "8M")
    [links]                 min_node_pair_gbps, min_ring_gbps, min_ring_inter_gbps, min_ring_intra_gbps
    [stragglers]            warn_score, fail_score (0-1; the run's --straggler-warn/-fail otherwise)
    [ddp]                   min_tokens_per_s

Anything else (an unknown key or probe, a wrong type, a bound out of range, a size that is
not a size) is a UsageError of one line naming the file, the line and the key: a gate with a
typo in its bar must stop, not pass silently. Judging is in gate/judging.py.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nccldoctor.bandwidth import BUS_FACTORS
from nccldoctor.errors import UsageError
from nccldoctor.gate.toml_lines import KeyPath, key_lines, line_of
from nccldoctor.units import parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10 has the same parser as a package
    import tomli as tomllib

Check = Callable[[Any], str | None]  # what is wrong with a value; None: nothing


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def above_zero(unit: str) -> Check:
    def check(value: Any) -> str | None:
        if not _number(value):
            return f"must be a number ({unit}), got {value!r}"
        return None if value > 0 else f"must be above 0 {unit}, got {value!r}"

    return check


def fraction(value: Any) -> str | None:
    if not _number(value):
        return f"must be a number between 0 and 1, got {value!r}"
    return None if 0 < value <= 1 else f"must be above 0 and at most 1, got {value!r}"


def count(least: int) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be a whole number, got {value!r}"
        return None if value >= least else f"must be at least {least}, got {value!r}"

    return check


def text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, got {value!r}"


def size_key(name: str) -> str | None:
    try:
        parse_size(name)
    except UsageError:
        return f"{name!r} is not a size (use e.g. 8, 64K, 8M, 1G)"
    return None


def probe_key(name: str) -> str | None:
    return None if name in BUS_FACTORS else f"unknown probe {name!r} (known: {', '.join(BUS_FACTORS)})"


@dataclass(frozen=True)
class Each:
    """A table whose keys are names the user picks (probes, sizes), each holding `schema`."""

    key_problem: Callable[[str], str | None]
    schema: Mapping[str, Any]
    what: str


AT_SIZE = {"min_busbw_gbps": above_zero("GB/s"), "max_latency_us": above_zero("us")}
PROBE = {
    "min_busbw_gbps": above_zero("GB/s"),
    "max_latency_us": above_zero("us"),
    "min_share_of_line_rate": fraction,
    "at": Each(size_key, AT_SIZE, "size"),
}
SCHEMA: dict[str, Any] = {
    "description": text,
    "job": {"nodes": count(1), "gpus_per_node": count(0), "nics_per_node": count(0)},
    "probes": Each(probe_key, PROBE, "probe"),
    "links": {
        "min_node_pair_gbps": above_zero("GB/s"),
        "min_ring_gbps": above_zero("GB/s"),
        "min_ring_inter_gbps": above_zero("GB/s"),
        "min_ring_intra_gbps": above_zero("GB/s"),
    },
    "stragglers": {"warn_score": fraction, "fail_score": fraction},
    "ddp": {"min_tokens_per_s": above_zero("tokens/s")},
}


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def dotted(path: KeyPath) -> str:
    """('probes', 'all_reduce', 'at', '8M') -> 'probes.all_reduce.at.8M', quoting what TOML would."""
    return ".".join(part if _BARE.match(part) else f'"{part}"' for part in path)


@dataclass(frozen=True)
class Rule:
    """One bound from the file, with where it was written."""

    file: str
    path: KeyPath  # ("probes", "all_reduce", "at", "8M", "min_busbw_gbps")
    line: int
    bound: float

    @property
    def key(self) -> str:
        return dotted(self.path)

    @property
    def source(self) -> str:
        """'expect.toml:7 probes.all_reduce.min_busbw_gbps': how a message cites the rule."""
        return f"{Path(self.file).name}:{self.line} {self.key}"

    def cite(self) -> dict[str, Any]:
        return {"file": self.file, "key": self.key, "line": self.line, "bound": self.bound}


@dataclass(frozen=True)
class Expectations:
    file: str
    description: str | None
    rules: tuple[Rule, ...]


class _Bad(Exception):
    def __init__(self, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _validate(table: Mapping[str, Any], schema: Mapping[str, Any] | Each, path: KeyPath) -> None:
    for name, value in table.items():
        here = (*path, name)
        if isinstance(schema, Each):
            if (problem := schema.key_problem(name)) is not None:
                raise _Bad(here, problem)
            expected: Any = schema.schema
        elif name in schema:
            expected = schema[name]
        else:
            known = ", ".join(schema)
            raise _Bad(here, f"unknown key (known {_where(path)}: {known})")
        if isinstance(expected, Mapping | Each):
            if not isinstance(value, dict):
                raise _Bad(here, f"must be a table, got {value!r}")
            _validate(value, expected, here)
        elif (problem := expected(value)) is not None:
            raise _Bad(here, problem)


def _where(path: KeyPath) -> str:
    return f"in [{dotted(path)}]" if path else "at the top"


def _check_thresholds(data: Mapping[str, Any]) -> None:
    """warn_score above fail_score when both are given (a rank below fail also warns)."""
    scores = data.get("stragglers", {})
    if "warn_score" in scores and "fail_score" in scores and scores["fail_score"] >= scores["warn_score"]:
        raise _Bad(
            ("stragglers", "fail_score"),
            f"must be below warn_score ({scores['warn_score']}), got {scores['fail_score']}",
        )


def _rules(file: str, data: Mapping[str, Any], lines: dict[KeyPath, int], path: KeyPath = ()) -> list[Rule]:
    rules = []
    for name, value in data.items():
        here = (*path, name)
        if isinstance(value, dict):
            rules += _rules(file, value, lines, here)
        elif here != ("description",):
            rules.append(Rule(file, here, line_of(lines, here), value))
    return rules


def parse(text_: str, file: str) -> Expectations:
    """The rules in `text_` (the file's content). Raises UsageError: one line, file:line and key."""
    try:
        data = tomllib.loads(text_)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"--expect {file}{_line_suffix(err)}: not valid TOML: {err}") from None
    lines = key_lines(text_)
    try:
        _validate(data, SCHEMA, ())
        _check_thresholds(data)
    except _Bad as bad:
        raise UsageError(
            f"--expect {file}:{line_of(lines, bad.path)}: {dotted(bad.path)}: {bad.message}"
        ) from None
    rules = _rules(file, data, lines)
    if not rules:
        raise UsageError(f"--expect {file}: holds no expectations (examples: examples/expectations/)")
    return Expectations(file, data.get("description"), tuple(rules))


def _line_suffix(err: Exception) -> str:
    """':3' from tomllib's '... (at line 3, column 7)'; '' when it names no line."""
    match = re.search(r"at line (\d+)", str(err))
    return f":{match.group(1)}" if match else ""


def load(path: Path) -> Expectations:
    """The file's rules. Raises UsageError (one line) for a missing, unreadable or bad file."""
    try:
        content = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--expect {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--expect {path}: is a directory, not a TOML file") from None
    except UnicodeDecodeError as err:
        raise UsageError(f"--expect {path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise UsageError(f"--expect {path}: cannot read it ({err.strerror})") from None
    return parse(content, str(path))
