"""Command-line flags of `nccldoctor.bench` -> a typed, validated BenchConfig.

The config is grouped by concern (CollectiveOptions, NetworkOptions, HealthOptions,
SweepOptions, DdpOptions, RunOptions). Each option is declared once, as a field of its group
made by `option(...)`: its flag(s), default, help and the function that parses its text. The
argparse parser, parse_args and the report's flat `config` section are generated from those
declarations, so a flag cannot be added in one place and forgotten in another. Each group
checks its own fields; BenchConfig checks what spans groups.

Flags that nccl-tests also has keep its short names and meanings (-b -e -f -n -w -d -o -c -r),
so a user can paste an nccl-tests command line. Every bad value raises UsageError with the
value and what is allowed; nothing here prints or exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from nccldoctor.argtypes import (
    Parser,
    a_path,
    factor,
    megabytes,
    package_name,
    percent,
    seconds,
    whole_number,
)
from nccldoctor.bandwidth import BUS_FACTORS
from nccldoctor.errors import UsageError
from nccldoctor.supervisor import DEFAULT_SILENCE_S, HEARTBEAT_S, LIVENESS_WINDOW_S
from nccldoctor.sweepspec import DEFAULT_MAX_COMBOS, check_combos, check_unique, parse_item
from nccldoctor.units import format_size, parse_size

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int32": torch.int32,
    "int64": torch.int64,
    "int8": torch.int8,
    "uint8": torch.uint8,
}
# nccl-tests' spellings, accepted too.
DTYPE_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "int": "int32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "fp32": "float32",
}

MAX_TIMEOUT_S = 7 * 24 * 3600
REDUCE_OPS = ("sum", "prod", "min", "max", "avg")
BACKENDS = ("auto", "nccl", "gloo")
ALL_PROBES = tuple(BUS_FACTORS)  # a collective is known once it has a bus factor

# A silence shorter than the liveness window would name a rank that is only slow to beat.
MIN_SILENCE_S = LIVENESS_WINDOW_S

# -- declaring an option -----------------------------------------------------------------------

FLAG = "nccldoctor.flag"  # the key of a field's Flag in its metadata


@dataclass(frozen=True)
class Flag:
    """How one config field appears on the command line (and in the report)."""

    names: tuple[str, ...]  # "-b", "--min-bytes": the short name first, as argparse shows them
    help: str
    parse: Callable[[str], Any] | None = None  # one argument's text -> the field's value
    action: str | None = None  # "store_true" / "store_false" (a switch), "append" (repeatable)
    dest: str | None = None  # when the long name is not the key (--no-ddp sets `ddp`)
    metavar: str | None = None

    @property
    def key(self) -> str:
        """argparse's dest, and the field's key in the report's flat `config` section."""
        return self.dest or self.names[-1].lstrip("-").replace("-", "_")


def option(
    *names: str,
    help: str,
    default: Any = MISSING,
    factory: Callable[[], Any] | None = None,
    parse: Callable[[str], Any] | None = None,
    action: str | None = None,
    dest: str | None = None,
    metavar: str | None = None,
) -> Any:
    """A config field that is also a command-line option: everything about it in one place."""
    metadata = {FLAG: Flag(names, help, parse, action, dest, metavar)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def flag_of(option_field: dataclasses.Field) -> Flag:
    return option_field.metadata[FLAG]


def default_of(option_field: dataclasses.Field) -> Any:
    if option_field.default_factory is not MISSING:
        return option_field.default_factory()
    return option_field.default


# -- parsing one argument ----------------------------------------------------------------------
# argparse calls these on the argument's text: an ArgumentTypeError becomes
# "argument -n/--iters: ...", a UsageError passes through as it is.


def switch(text: str) -> bool:
    if text not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"{text!r} is not 0 or 1")
    return text == "1"


def on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"{text!r} is not on or off")
    return text == "on"


def score(text: str) -> float:
    """A straggler score threshold: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a score in (0, 1] (the median rank is 1.0)")
    return value


def parse_expect_busbw(text: str) -> dict[str, float]:
    """'20' -> every probe 20 GB/s; 'all_reduce=20,all_gather=18' -> per probe."""

    def gbps(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise UsageError(
                f"--expect-busbw: {value!r} is not a number of GB/s (use 20, or all_reduce=20,sendrecv=10)"
            ) from None
        if not (math.isfinite(number) and number > 0):  # NaN compares False both ways
            raise UsageError(f"--expect-busbw: {value!r} must be a positive number")
        return number

    if "=" not in text:
        return dict.fromkeys(ALL_PROBES, gbps(text))
    expectations = {}
    for item in text.split(","):
        probe, sep, value = item.partition("=")
        if not sep or probe.strip() not in ALL_PROBES:
            raise UsageError(f"--expect-busbw: {item!r} is not PROBE=GBPS (probes: {', '.join(ALL_PROBES)})")
        expectations[probe.strip()] = gbps(value)
    return expectations


def parse_ports(text: str) -> list[tuple[int, int]]:
    """'40000-40100,29400' -> [(40000, 40100), (29400, 29400)]; ports are 1..65535."""

    def port(value: str, item: str) -> int:
        # ASCII digits: str.isdigit() is also True for '²', which int() refuses.
        if not re.fullmatch(r"\s*[0-9]{1,5}\s*", value) or not 1 <= int(value) <= 65535:
            raise UsageError(
                f"--ports: {item!r} is not a port or range of ports 1-65535 (e.g. 40000-40100,29400)"
            )
        return int(value)

    ranges = []
    for item in text.split(","):
        low, sep, high = item.strip().partition("-")
        first = port(low, item)
        last = port(high, item) if sep else first
        if last < first:
            raise UsageError(f"--ports: {item!r} is a reversed range (write {last}-{first})")
        ranges.append((first, last))
    return ranges


def parse_ifaces(text: str) -> str | list[str]:
    """'auto' | 'off' | 'eth0,ib0' | 'mlx5_0:1,mlx5_1' (IB ports or devices, swept through
    NCCL_IB_HCA on NCCL over IB; names are checked against the nodes once they report)."""
    if text in ("auto", "off"):
        return text
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(not re.fullmatch(r"[\w.-]+(:\d+)?", name) for name in names):
        raise UsageError(f"--ifaces: {text!r} is not auto, off or a comma list of interface or IB port names")
    return list(dict.fromkeys(names))


def size_of(flag: str) -> Callable[[str], int]:
    """'64K' -> 65536; a bad size names `flag`, as nccl-tests users would write it."""
    return lambda text: parse_size(text, flag)


def probe_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def dtype_name(text: str) -> str:
    return DTYPE_ALIASES.get(text, text)


def optional_path(text: str) -> Path | None:
    return Path(text) if text else None  # an empty --out is no --out, not the current folder


# -- the groups --------------------------------------------------------------------------------


@dataclass(kw_only=True)
class CollectiveOptions:
    """What the collective probes measure, and how; the sweeps' workers get this group whole."""

    min_bytes: int = option(
        "-b",
        "--min-bytes",
        metavar="SIZE",
        default=8,
        parse=size_of("--min-bytes"),
        help="smallest total buffer size (8, 64K, 1M, 1G; default 8)",
    )
    max_bytes: int = option(
        "-e",
        "--max-bytes",
        metavar="SIZE",
        default=8 * 1024**2,
        parse=size_of("--max-bytes"),
        help="largest total buffer size (default 8M)",
    )
    step_factor: int = option(
        "-f",
        "--step-factor",
        default=4,
        parse=whole_number,
        metavar="FACTOR",
        help="size multiplier between rows (default 4)",
    )
    iters: int = option(
        "-n",
        "--iters",
        default=20,
        parse=whole_number,
        metavar="N",
        help="timed iterations per size (default 20)",
    )
    warmup: int = option(
        "-w",
        "--warmup",
        metavar="N",
        default=5,
        parse=whole_number,
        help="untimed warm-up iterations per size (default 5)",
    )
    dtype: str = option(
        "-d",
        "--dtype",
        metavar="DTYPE",
        default="float32",
        parse=dtype_name,
        help=f"element type: {', '.join(DTYPES)}; also {', '.join(DTYPE_ALIASES)} (default float32)",
    )
    op: str = option(
        "-o", "--op", default="sum", metavar="OP", help=f"reduction: {', '.join(REDUCE_OPS)} (default sum)"
    )
    check: bool = option(
        "-c",
        "--check",
        default=True,
        parse=switch,
        metavar="1|0",
        help="check every output element: 1 or 0 (default 1)",
    )
    root: int = option(
        "-r", "--root", default=0, parse=whole_number, metavar="RANK", help="broadcast root rank (default 0)"
    )
    probes: list[str] = option(
        "--probes",
        metavar="PROBE,...",
        factory=lambda: list(ALL_PROBES),
        parse=probe_names,
        help="comma list of probes (default: all)",
    )
    expect_busbw: dict[str, float] = option(  # probe -> GB/s at the largest size
        "--expect-busbw",
        metavar="GBPS",
        factory=dict,
        parse=parse_expect_busbw,
        help="busbw in GB/s expected at the largest size: 20 for every probe, or all_reduce=20,sendrecv=10",
    )

    def __post_init__(self) -> None:
        self._check_numbers()
        unknown = [p for p in self.probes if p not in ALL_PROBES]
        if unknown:
            raise UsageError(f"--probes: unknown probe {unknown[0]!r} (known: {', '.join(ALL_PROBES)})")
        if self.dtype not in DTYPES:
            raise UsageError(
                f"--dtype: unknown dtype {self.dtype!r} (known: {', '.join(DTYPES)}; "
                f"also {', '.join(DTYPE_ALIASES)})"
            )
        if self.op not in REDUCE_OPS:
            raise UsageError(f"--op: unknown op {self.op!r} (known: {', '.join(REDUCE_OPS)})")
        if self.op == "avg" and not self.torch_dtype.is_floating_point:
            raise UsageError(f"--op avg needs a floating dtype, not {self.dtype}")
        not_run = [p for p in self.expect_busbw if p not in self.probes]
        if not_run and len(self.expect_busbw) < len(ALL_PROBES):  # named explicitly, not "20" for all
            raise UsageError(f"--expect-busbw names {not_run[0]}, which --probes does not run")
        self.expect_busbw = {p: v for p, v in self.expect_busbw.items() if p in self.probes}

    def _check_numbers(self) -> None:
        if self.min_bytes < 1 or self.max_bytes < 1:
            raise UsageError("--min-bytes and --max-bytes must be at least 1 byte")
        if self.min_bytes > self.max_bytes:
            raise UsageError(
                f"--min-bytes ({format_size(self.min_bytes)}) is larger than --max-bytes "
                f"({format_size(self.max_bytes)})"
            )
        if self.step_factor < 2:
            raise UsageError(f"--step-factor must be 2 or more, not {self.step_factor}")
        if self.iters < 1:
            raise UsageError(f"--iters must be 1 or more, not {self.iters}")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more, not {self.warmup}")
        if self.root < 0:
            raise UsageError(f"--root must be a rank (0 or more), not {self.root}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def sizes(self) -> list[int]:
        """Total buffer sizes from min to max, multiplied by step_factor, as nccl-tests -f."""
        sizes, size = [], self.min_bytes
        while size <= self.max_bytes:
            sizes.append(size)
            size *= self.step_factor
        return sizes


@dataclass(kw_only=True)
class NetworkOptions:
    """The network check before the process group forms, and the per-NIC sweep."""

    ports: list[tuple[int, int]] = option(
        "--ports",
        metavar="PORTS",
        factory=list,
        parse=parse_ports,
        help="extra ports to check between nodes: 40000-40100,29400",
    )
    ifaces: str | list[str] = option(  # "auto", "off" or interface names
        "--ifaces",
        metavar="IFACES",
        default="auto",
        parse=parse_ifaces,
        help="per-NIC sweep: auto (multi-node, 2+ shared NICs or InfiniBand ports), off, eth0,eth1, mlx5_0:1",
    )


@dataclass(kw_only=True)
class ConsistencyOptions:
    """Is every node running the same job? Before the process group, through the store."""

    packages: list[str] = option(
        "--check-package",
        factory=list,
        parse=package_name,
        action="append",
        metavar="NAME",
        help="compare this installed package's version across nodes (repeatable: transformers)",
    )
    code: list[str] = option(
        "--code",
        factory=list,
        parse=a_path,
        action="append",
        metavar="DIR",
        help="compare this code tree across nodes: git commit and changes, or file digests (repeatable)",
    )
    paths: list[str] = option(
        "--check-path",
        factory=list,
        parse=a_path,
        action="append",
        metavar="PATH",
        help="check this file or directory exists and matches on every node (repeatable: the dataset)",
    )
    clock_warn: float = option(
        "--clock-warn",
        default=1.0,
        parse=seconds,
        metavar="SECONDS",
        help="warn when a node's clock is off rank 0's by more than SECONDS (default 1)",
    )
    clock_fail: float = option(
        "--clock-fail",
        default=30.0,
        parse=seconds,
        metavar="SECONDS",
        help="fail when a node's clock is off rank 0's by more than SECONDS (default 30)",
    )

    def __post_init__(self) -> None:
        if not 0 < self.clock_warn < self.clock_fail:
            raise UsageError(
                f"--clock-warn ({self.clock_warn:g}) and --clock-fail ({self.clock_fail:g}) need "
                "0 < warn < fail seconds"
            )


@dataclass(kw_only=True)
class HealthOptions:
    """Stragglers, links, host contention and GPU health, after the collectives."""

    enabled: bool = option(
        "--health",
        metavar="on|off",
        default=True,
        parse=on_off,
        help="straggler, link, host and GPU health probes after the collectives: on or off (default on)",
    )
    # Rank scores: the median rank is 1.0, a rank half as fast 0.5.
    straggler_warn: float = option(
        "--straggler-warn",
        default=0.9,
        parse=score,
        metavar="SCORE",
        help="warn below this rank score (default 0.9)",
    )
    straggler_fail: float = option(
        "--straggler-fail",
        default=0.75,
        parse=score,
        metavar="SCORE",
        help="fail below this rank score (default 0.75)",
    )

    def __post_init__(self) -> None:
        if not 0 < self.straggler_fail < self.straggler_warn <= 1:
            raise UsageError(
                f"--straggler-fail ({self.straggler_fail}) and --straggler-warn ({self.straggler_warn}) "
                "need 0 < fail < warn <= 1 (scores: the median rank is 1.0, half as fast is 0.5)"
            )


@dataclass(kw_only=True)
class SweepOptions:
    """The settings sweep: the run's probes under each setting, in fresh processes."""

    settings: list[tuple[str, list[str]]] = option(  # (VAR, values), in the order given
        "--sweep",
        factory=list,
        parse=parse_item,
        action="append",
        metavar="VAR=v1,v2",
        help="settings sweep: measure each value in fresh processes (repeatable: all combinations)",
    )
    max_combos: int = option(
        "--max-combos",
        metavar="N",
        default=DEFAULT_MAX_COMBOS,
        parse=whole_number,
        help=f"most combinations --sweep may make (default {DEFAULT_MAX_COMBOS})",
    )
    repeats: int = option(
        "--sweep-repeats",
        default=3,
        parse=whole_number,
        metavar="N",
        help="interleaved rounds per setting (default 3)",
    )

    def __post_init__(self) -> None:
        check_unique(self.settings)
        if self.repeats < 2:
            raise UsageError(
                f"--sweep-repeats must be 2 or more, not {self.repeats} (the spread between "
                "repeats is the noise a recommendation must beat)"
            )
        if self.max_combos < 1:
            raise UsageError(f"--max-combos must be 1 or more, not {self.max_combos}")
        check_combos(self.settings, self.max_combos)


@dataclass(kw_only=True)
class DdpOptions:
    """The reference DDP training benchmark after the probes, and its checkpoint round trip."""

    enabled: bool = option(
        "--no-ddp",
        default=True,
        action="store_false",
        dest="ddp",
        help="skip the reference DDP training benchmark",
    )
    only: bool = option(  # the DDP benchmark and the network check that guards init, nothing else
        "--ddp-only",
        default=False,
        action="store_true",
        help="run only the DDP benchmark (no probes, health or sweeps)",
    )
    model: str = option(  # a refmodel preset
        "--ddp-model",
        metavar="PRESET",
        default="auto",
        help="DDP model preset: auto (gpt2-125m on GPU, tiny on CPU), tiny, gpt2-125m",
    )
    batch: int = option(  # per-rank micro-batch; 0: the preset's
        "--ddp-batch",
        default=0,
        parse=whole_number,
        metavar="N",
        help="DDP per-rank micro-batch (default: the preset's)",
    )
    accum: int = option(  # micro-batches per optimizer step
        "--ddp-accum",
        default=1,
        parse=whole_number,
        metavar="N",
        help="DDP gradient accumulation steps (default 1)",
    )
    bucket_mb: float = option(
        "--ddp-bucket-mb",
        default=25.0,
        parse=megabytes,
        metavar="MIB",
        help="DDP bucket_cap_mb, in MiB (default 25)",
    )
    steps: int = option(  # measured synced steps (as many no_sync steps again)
        "--ddp-steps",
        default=10,
        parse=whole_number,
        metavar="N",
        help="measured synced DDP steps (default 10)",
    )
    ckpt_dir: Path | None = option(
        "--ckpt-dir",
        metavar="DIR",
        default=None,
        parse=optional_path,
        help="checkpoint round trip in DIR: must be one filesystem for every node",
    )

    def __post_init__(self) -> None:
        from nccldoctor.refmodel import PRESETS  # torch.nn: only the bench's config needs it

        if self.only and not self.enabled:
            raise UsageError("--ddp-only and --no-ddp contradict each other")
        if self.model != "auto" and self.model not in PRESETS:
            raise UsageError(f"--ddp-model: unknown model {self.model!r} (known: auto, {', '.join(PRESETS)})")
        if self.batch < 0:
            raise UsageError(f"--ddp-batch must be 0 (the preset's) or more, not {self.batch}")
        for flag, value in (("--ddp-accum", self.accum), ("--ddp-steps", self.steps)):
            if value < 1:
                raise UsageError(f"{flag} must be 1 or more, not {value}")
        if not (math.isfinite(self.bucket_mb) and self.bucket_mb > 0):  # DDP int()s it: inf raises
            raise UsageError(f"--ddp-bucket-mb must be a positive number of MiB, not {self.bucket_mb}")


@dataclass(kw_only=True)
class GateOptions:
    """The run as a gate: a quick preset, the cluster's own bar, and the last known-good run.
    Only rank 0 reads the files (they are per-rank flags); it checks them before any
    measurement, so a bad file is exit 2 in seconds."""

    quick: bool = option(
        "--quick",
        default=False,
        action="store_true",
        help="the gate preset: network and consistency checks, all_reduce and all_gather up to 8M, "
        "rank scores and node-pair links; no DDP benchmark, no sweeps",
    )
    expect: Path | None = option(
        "--expect",
        metavar="FILE",
        default=None,
        parse=optional_path,
        help="judge the run against the expectations in FILE (TOML; see examples/expectations/)",
    )
    baseline: Path | None = option(
        "--baseline",
        metavar="PATH",
        default=None,
        parse=optional_path,
        help="compare with a known-good run: its report.json or its folder",
    )
    regression_fail: float = option(
        "--regression-fail",
        metavar="PERCENT",
        default=20.0,
        parse=percent,
        help="a regression beyond the noise is a warning; beyond PERCENT worse than the baseline a "
        "failure (default 20)",
    )
    regression_noise: float = option(
        "--regression-noise",
        metavar="FACTOR",
        default=1.0,
        parse=factor,
        help="how many times the runs' own spread a change must exceed to count (default 1)",
    )


@dataclass(kw_only=True)
class RunOptions:
    """The run as a whole: backend, deadline, where the report goes and how it is told."""

    backend: str = option(  # auto: NCCL when CUDA is usable, else Gloo on CPU
        "--backend",
        default="auto",
        metavar="BACKEND",
        help="auto, nccl or gloo (auto: NCCL with CUDA, else Gloo)",
    )
    timeout: float = option(  # every wait is bounded by it
        "--timeout",
        default=300.0,
        parse=seconds,
        metavar="SECONDS",
        help="deadline for the whole run in seconds (default 300)",
    )
    silence: float = option(  # a rank frozen, dead or cut off is named this soon, not at --timeout
        "--silence",
        default=DEFAULT_SILENCE_S,
        parse=seconds,
        metavar="SECONDS",
        help="end the run when a rank sends no heartbeat for SECONDS, naming it (frozen, dead or cut off; "
        f"default {DEFAULT_SILENCE_S:g})",
    )
    out: Path | None = option(  # None: ./nccldoctor-out/<timestamp>/
        "--out",
        metavar="DIR",
        default=None,
        parse=optional_path,
        help="write the report into DIR itself (default ./nccldoctor-out/<timestamp>)",
    )
    strict: bool = option("--strict", default=False, action="store_true", help="exit 1 on warnings too")
    quiet: bool = option(
        "--quiet", default=False, action="store_true", help="print only findings and the verdict"
    )
    html: bool = option(  # the figures cost rank 0 a few seconds at the end (benchmarks/html_report.py)
        "--no-html",
        default=True,
        action="store_false",
        dest="html",
        help="do not write report.html (its figures take rank 0 a few seconds)",
    )

    def __post_init__(self) -> None:
        # Bounded: every wait is derived from it, and timedelta(seconds=inf) or a thread's wait
        # beyond threading.TIMEOUT_MAX raises OverflowError deep inside a run.
        if not 0 < self.timeout <= MAX_TIMEOUT_S:
            raise UsageError(
                f"--timeout must be a positive number of seconds up to {MAX_TIMEOUT_S} (a week), "
                f"not {self.timeout}"
            )
        if not self.silence >= MIN_SILENCE_S:
            raise UsageError(
                f"--silence must be at least {MIN_SILENCE_S:g} seconds (heartbeats come every "
                f"{HEARTBEAT_S:g} s), not {self.silence:g}"
            )
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")


# --quick, a pre-job gate in seconds: the store-only network and consistency checks (always on),
# all_reduce and all_gather from 8 B up by 32x (to 8M on Gloo, 256M on NCCL: see
# quick_max_bytes) with 10 timed iterations after 2 warm-ups, the rank scores and node-pair
# links (health); no per-NIC sweep and no DDP benchmark. Group -> field -> value.
QUICK_PRESET: dict[str, dict[str, Any]] = {
    "collectives": {"probes": ["all_reduce", "all_gather"], "step_factor": 32, "iters": 10, "warmup": 2},
    "network": {"ifaces": "off"},
    "ddp": {"enabled": False},
}


def quick_max_bytes(backend: str) -> int:
    """--quick's largest size: where busbw stops rising on the backend this rank will use (the
    choice `--backend auto` makes, so every rank of a job agrees). On GPUs NCCL needs hundreds of
    MiB to reach its plateau (nccl-tests' all_reduce curves), and 256M costs milliseconds a call;
    Gloo on CPUs is near its plateau by 8M, and more costs seconds."""
    on_gpu = backend == "nccl" or (backend == "auto" and torch.cuda.is_available())
    return 256 * 1024**2 if on_gpu else 8 * 1024**2


@dataclass(kw_only=True)
class BenchConfig:
    """Everything one bench run was asked to do; each group defaults to its own defaults.

    --ddp-only turns off what it does not run, and refuses options set away from their defaults
    that it would ignore; so replace a group of a --ddp-only config, not the BenchConfig itself.
    """

    collectives: CollectiveOptions = field(default_factory=CollectiveOptions)
    network: NetworkOptions = field(default_factory=NetworkOptions)
    consistency: ConsistencyOptions = field(default_factory=ConsistencyOptions)
    health: HealthOptions = field(default_factory=HealthOptions)
    sweep: SweepOptions = field(default_factory=SweepOptions)
    ddp: DdpOptions = field(default_factory=DdpOptions)
    gate: GateOptions = field(default_factory=GateOptions)
    run: RunOptions = field(default_factory=RunOptions)

    def __post_init__(self) -> None:
        if self.gate.quick:
            self._apply_quick()
        if self.ddp.only:
            self._refuse_with_ddp_only()
            # Nothing else that measures (the network check before init still runs).
            self.collectives = replace(self.collectives, probes=[])
            self.health = replace(self.health, enabled=False)
            self.network = replace(self.network, ifaces="off")
        if not self.collectives.probes and not self.ddp.only:
            raise UsageError("--probes: name at least one probe")

    def _apply_quick(self) -> None:
        """--quick: the preset's values, except where a flag set a group's field away from its
        default (`--quick --probes all_reduce` measures only all_reduce). It runs no sweep and no
        DDP benchmark, so flags asking for them are refused rather than dropped."""
        if self.ddp.only:
            raise UsageError("--quick runs no DDP benchmark: drop --ddp-only (or --quick)")
        if self.sweep.settings:
            raise UsageError("--quick runs no settings sweep: drop --sweep (or --quick)")
        largest = quick_max_bytes(self.run.backend)
        preset_of = {**QUICK_PRESET, "collectives": {**QUICK_PRESET["collectives"], "max_bytes": largest}}
        for name, preset in preset_of.items():
            group = getattr(self, name)
            chosen = {key: value for key, value in preset.items() if is_default(group, key)}
            setattr(self, name, replace(group, **chosen))

    def _refuse_with_ddp_only(self) -> None:
        """Flags about what --ddp-only does not run: one line rather than silence."""
        given = [
            flag
            for flag, group, name in (
                ("--probes", self.collectives, "probes"),
                ("--expect-busbw", self.collectives, "expect_busbw"),
                ("--ifaces", self.network, "ifaces"),
            )
            if not is_default(group, name)
        ]
        if given:
            raise UsageError(
                f"--ddp-only runs only the DDP benchmark: drop {', '.join(given)} (or --ddp-only)"
            )
        if self.sweep.settings:
            raise UsageError("--ddp-only runs only the DDP benchmark; drop --sweep (or --ddp-only)")


def is_default(group: Any, name: str) -> bool:
    (declared,) = [f for f in fields(group) if f.name == name]
    return getattr(group, name) == default_of(declared)


# -- generated from the declarations -----------------------------------------------------------


def groups() -> Iterator[tuple[str, type]]:
    """BenchConfig's groups as (attribute, class), in order (a group's class is its factory)."""
    for group in fields(BenchConfig):
        yield group.name, group.default_factory


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="nccldoctor.bench",
        description="Measure and diagnose collective communication.",
        allow_abbrev=False,
    )
    for _, group in groups():
        for declared in fields(group):
            flag = flag_of(declared)
            # argparse also runs `type` on a default that is a string ("auto", "float32"): each such
            # parse returns it unchanged (tests/test_config.py compares the parsed defaults).
            more = {"type": flag.parse, "action": flag.action, "metavar": flag.metavar}
            parser.add_argument(
                *flag.names,
                dest=flag.key,
                default=default_of(declared),
                help=flag.help,
                **{k: v for k, v in more.items() if v is not None},
            )
    return parser


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    args = vars(build_parser().parse_args(argv))
    return BenchConfig(
        **{name: group(**{f.name: args[flag_of(f).key] for f in fields(group)}) for name, group in groups()}
    )


def config_section(config: BenchConfig) -> dict[str, Any]:
    """The report's `config` section: what this run was asked to do (and so what a pass means).
    Flat, one key per flag (its argparse dest), plus the sizes the flags make."""
    section = {}
    for name, _ in groups():
        group = getattr(config, name)
        values = dataclasses.asdict(group)
        for declared in fields(group):
            value = values[declared.name]
            section[flag_of(declared).key] = str(value) if isinstance(value, Path) else value
    section["sizes"] = config.collectives.sizes()
    return section


# Flags that may differ between ranks: only rank 0 writes, prints and reads the gate's files.
PER_RANK_FLAGS = frozenset(
    {"out", "quiet", "html", "expect", "baseline", "regression_fail", "regression_noise"}
)


def shared_flags(config: BenchConfig) -> dict:
    """The flags every rank must agree on: a rank with another -e or --probes would run other
    collectives than its peers and hang them."""
    return {k: v for k, v in config_section(config).items() if k not in PER_RANK_FLAGS}


def flag_disagreement(flags_by_rank: dict[int, dict]) -> str | None:
    """One line naming the first flag on which a rank differs from rank 0, or None."""
    reference = flags_by_rank.get(0, {})
    for rank, flags in sorted(flags_by_rank.items()):
        for name in sorted(set(reference) | set(flags)):
            if flags.get(name) != reference.get(name):
                ours, theirs = (_flag_text(name, values.get(name)) for values in (reference, flags))
                return (
                    f"ranks were started with different flags: {_flag_name(name)} is {ours} on rank 0 "
                    f"but {theirs} on rank {rank} (run the same command on every node)"
                )
    return None


def _declared(key: str) -> dataclasses.Field | None:
    return next((f for _, group in groups() for f in fields(group) if flag_of(f).key == key), None)


def _flag_name(key: str) -> str:
    """'max_bytes' -> '--max-bytes' (the flag as typed); a key no flag has stays as it is."""
    declared = _declared(key)
    return flag_of(declared).names[-1] if declared else key


def _flag_text(key: str, value: Any) -> str:
    """A flag's value as the command line writes it, not as Python prints it: 1M, not 1048576;
    all_reduce, sendrecv, not ['all_reduce', 'sendrecv']; a switch given or not. The values
    came through JSON, so --ports' ranges and --sweep's items are lists of two."""
    declared = _declared(key)
    if declared and flag_of(declared).action in ("store_true", "store_false"):
        return "not given" if value == default_of(declared) else "given"
    if key in ("min_bytes", "max_bytes") and isinstance(value, int):
        return format_size(value)
    if key == "sizes" and isinstance(value, list):
        return ", ".join(format_size(size) for size in value) or "none"
    if isinstance(value, dict):
        return (
            ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
            or "none"
        )
    if isinstance(value, list | tuple):
        return ", ".join(_item_text(item) for item in value) or "none"
    return "unset" if value is None else str(value)


def _item_text(item: Any) -> str:
    if isinstance(item, list | tuple) and len(item) == 2:
        first, second = item
        if isinstance(second, list | tuple):  # a --sweep item: (VAR, values)
            return f"{first}={','.join(map(str, second))}"
        return f"{first}-{second}"  # a --ports range
    return str(item)
