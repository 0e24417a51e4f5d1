"""Command-line flags of `nccldoctor.bench` -> a typed, validated BenchConfig.

Flags that nccl-tests also has keep its short names and meanings (-b -e -f -n -w -d -o -c -r),
so a user can paste an nccl-tests command line. Every bad value raises UsageError with the
value and what is allowed; nothing here prints or exits.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from nccldoctor.argtypes import Parser, megabytes, seconds, whole_number
from nccldoctor.errors import UsageError
from nccldoctor.sweepspec import DEFAULT_MAX_COMBOS, check_combos, parse_sweep
from nccldoctor.units import parse_size

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

REDUCE_OPS = ("sum", "prod", "min", "max", "avg")
BACKENDS = ("auto", "nccl", "gloo")
ALL_PROBES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "sendrecv")


@dataclass(kw_only=True)
class BenchConfig:
    probes: list[str] = field(default_factory=lambda: list(ALL_PROBES))
    min_bytes: int = 8  # smallest total buffer size
    max_bytes: int = 8 * 1024**2  # largest total buffer size
    step_factor: int = 4  # multiply the size by this between rows
    iters: int = 20  # timed iterations per size
    warmup: int = 5  # untimed iterations per size, before the timed loop
    dtype: str = "float32"
    op: str = "sum"  # reduction op of all_reduce and reduce_scatter
    check: bool = True  # verify every output element
    root: int = 0  # broadcast root
    backend: str = "auto"  # auto: NCCL when CUDA is usable, else Gloo on CPU
    timeout: float = 300.0  # seconds for the whole run; every wait is bounded by it
    out: Path | None = None  # report folder; None: ./nccldoctor-out/<timestamp>/
    expect_busbw: dict[str, float] = field(default_factory=dict)  # probe -> GB/s
    strict: bool = False  # warnings fail the run (exit 1)
    quiet: bool = False  # terminal: verdict and findings only
    ports: list[tuple[int, int]] = field(default_factory=list)  # extra port ranges to check
    ifaces: str | list[str] = "auto"  # per-NIC sweep: "auto", "off" or interface names
    health: bool = True  # stragglers, links, host contention and GPU health after the collectives
    straggler_warn: float = 0.9  # a rank scoring below this (median rank = 1.0) warns
    straggler_fail: float = 0.75  # ... below this, fails
    sweep: list[tuple[str, list[str]]] = field(default_factory=list)  # settings sweep: (VAR, values)
    max_combos: int = DEFAULT_MAX_COMBOS  # most settings a sweep may have (besides the defaults)
    sweep_repeats: int = 3  # interleaved rounds: each setting is measured this many times
    ddp: bool = True  # the reference DDP training benchmark after the probes
    ddp_only: bool = False  # run only it (and the network check that guards init)
    ddp_model: str = "auto"  # a refmodel preset; auto: gpt2-125m on GPU, tiny on CPU
    ddp_batch: int = 0  # per-rank micro-batch; 0: the preset's
    ddp_accum: int = 1  # micro-batches per optimizer step
    ddp_bucket_mb: float = 25.0  # DDP's bucket_cap_mb
    ddp_steps: int = 10  # measured synced steps (as many no_sync steps again)
    ckpt_dir: Path | None = None  # checkpoint round trip into this directory (shared by all nodes?)

    def __post_init__(self) -> None:
        self._check_numbers()
        unknown = [p for p in self.probes if p not in ALL_PROBES]
        if unknown:
            raise UsageError(f"--probes: unknown probe {unknown[0]!r} (known: {', '.join(ALL_PROBES)})")
        if not self.probes and not self.ddp_only:
            raise UsageError("--probes: name at least one probe")
        self._check_ddp()
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype: unknown dtype {self.dtype!r} (known: {', '.join(DTYPES)})")
        if self.op not in REDUCE_OPS:
            raise UsageError(f"--op: unknown op {self.op!r} (known: {', '.join(REDUCE_OPS)})")
        if self.op == "avg" and not self.torch_dtype.is_floating_point:
            raise UsageError(f"--op avg needs a floating dtype, not {self.dtype}")
        not_run = [p for p in self.expect_busbw if p not in self.probes]
        if not_run and len(self.expect_busbw) < len(ALL_PROBES):  # named explicitly, not "20" for all
            raise UsageError(f"--expect-busbw names {not_run[0]}, which --probes does not run")
        self.expect_busbw = {p: v for p, v in self.expect_busbw.items() if p in self.probes}
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")

    def _check_numbers(self) -> None:
        if self.min_bytes < 1 or self.max_bytes < 1:
            raise UsageError("--min-bytes and --max-bytes must be at least 1 byte")
        if self.min_bytes > self.max_bytes:
            raise UsageError(f"--min-bytes ({self.min_bytes}) is larger than --max-bytes ({self.max_bytes})")
        if self.step_factor < 2:
            raise UsageError(f"--step-factor must be 2 or more, not {self.step_factor}")
        if self.iters < 1:
            raise UsageError(f"--iters must be 1 or more, not {self.iters}")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more, not {self.warmup}")
        if not self.timeout > 0:
            raise UsageError(f"--timeout must be a positive number of seconds, not {self.timeout}")
        if self.root < 0:
            raise UsageError(f"--root must be a rank (0 or more), not {self.root}")
        if self.sweep_repeats < 2:
            raise UsageError(
                f"--sweep-repeats must be 2 or more, not {self.sweep_repeats} (the spread between "
                "repeats is the noise a recommendation must beat)"
            )
        if self.max_combos < 1:
            raise UsageError(f"--max-combos must be 1 or more, not {self.max_combos}")
        check_combos(self.sweep, self.max_combos)
        if not 0 < self.straggler_fail < self.straggler_warn <= 1:
            raise UsageError(
                f"--straggler-fail ({self.straggler_fail}) and --straggler-warn ({self.straggler_warn}) "
                "need 0 < fail < warn <= 1 (scores: the median rank is 1.0, half as fast is 0.5)"
            )

    def _check_ddp(self) -> None:
        from nccldoctor.refmodel import PRESETS  # torch.nn: only the bench's config needs it

        if self.ddp_only and not self.ddp:
            raise UsageError("--ddp-only and --no-ddp contradict each other")
        if self.ddp_only and self.sweep:
            raise UsageError("--ddp-only runs only the DDP benchmark; drop --sweep (or --ddp-only)")
        if self.ddp_model != "auto" and self.ddp_model not in PRESETS:
            raise UsageError(
                f"--ddp-model: unknown model {self.ddp_model!r} (known: auto, {', '.join(PRESETS)})"
            )
        if self.ddp_batch < 0:
            raise UsageError(f"--ddp-batch must be 0 (the preset's) or more, not {self.ddp_batch}")
        for flag, value in (("--ddp-accum", self.ddp_accum), ("--ddp-steps", self.ddp_steps)):
            if value < 1:
                raise UsageError(f"{flag} must be 1 or more, not {value}")
        if not self.ddp_bucket_mb > 0:
            raise UsageError(f"--ddp-bucket-mb must be a positive number of MiB, not {self.ddp_bucket_mb}")

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


def _switch(text: str) -> bool:
    if text not in ("0", "1"):
        raise argparse.ArgumentTypeError(f"{text!r} is not 0 or 1")
    return text == "1"


def _on_off(text: str) -> bool:
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
        if number <= 0:
            raise UsageError(f"--expect-busbw: {value!r} must be positive")
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
        if not value.strip().isdigit() or not 1 <= int(value) <= 65535:
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
    """'auto' | 'off' | 'eth0,ib0' (names are checked against the nodes once they report)."""
    if text in ("auto", "off"):
        return text
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or any(
        not name.replace("-", "").replace("_", "").replace(".", "").isalnum() for name in names
    ):
        raise UsageError(f"--ifaces: {text!r} is not auto, off or a comma list of interface names")
    return list(dict.fromkeys(names))


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="nccldoctor.bench",
        description="Measure and diagnose collective communication.",
        allow_abbrev=False,
    )
    add = p.add_argument
    add("-b", "--min-bytes", default="8", help="smallest total buffer size (8, 64K, 1M, 1G; default 8)")
    add("-e", "--max-bytes", default="8M", help="largest total buffer size (default 8M)")
    add("-f", "--step-factor", type=whole_number, default=4, help="size multiplier between rows (default 4)")
    add("-n", "--iters", type=whole_number, default=20, help="timed iterations per size (default 20)")
    add(
        "-w", "--warmup", type=whole_number, default=5, help="untimed warm-up iterations per size (default 5)"
    )
    add("-d", "--dtype", default="float32", help=f"element type: {', '.join(DTYPES)} (default float32)")
    add("-o", "--op", default="sum", help=f"reduction: {', '.join(REDUCE_OPS)} (default sum)")
    add("-c", "--check", type=_switch, default=True, help="check every output element: 1 or 0 (default 1)")
    add("-r", "--root", type=whole_number, default=0, help="broadcast root rank (default 0)")
    add("--probes", default=",".join(ALL_PROBES), help="comma list of probes (default: all)")
    add("--backend", default="auto", help="auto, nccl or gloo (auto: NCCL with CUDA, else Gloo)")
    add("--timeout", type=seconds, default=300.0, help="deadline for the whole run in seconds (default 300)")
    add("--out", default=None, help="report folder (default ./nccldoctor-out/<timestamp>)")
    add("--expect-busbw", default=None, help="GB/s expected at the largest size: 20, or all_reduce=20,...")
    add("--ports", default=None, help="extra ports to check between nodes: 40000-40100,29400")
    add(
        "--ifaces", default="auto", help="per-NIC sweep: auto (multi-node, 2+ shared NICs), off, or eth0,eth1"
    )
    add(
        "--health",
        type=_on_off,
        default=True,
        help="straggler, link, host and GPU health probes after the collectives: on or off (default on)",
    )
    add("--straggler-warn", type=score, default=0.9, help="warn below this rank score (default 0.9)")
    add("--straggler-fail", type=score, default=0.75, help="fail below this rank score (default 0.75)")
    add(
        "--sweep",
        action="append",
        default=[],
        metavar="VAR=v1,v2",
        help="settings sweep: measure each value in fresh processes (repeatable: all combinations)",
    )
    add(
        "--max-combos",
        type=whole_number,
        default=DEFAULT_MAX_COMBOS,
        help=f"most combinations --sweep may make (default {DEFAULT_MAX_COMBOS})",
    )
    add("--sweep-repeats", type=whole_number, default=3, help="interleaved rounds per setting (default 3)")
    add("--no-ddp", action="store_true", help="skip the reference DDP training benchmark")
    add("--ddp-only", action="store_true", help="run only the DDP benchmark (no probes, health or sweeps)")
    add(
        "--ddp-model",
        default="auto",
        help="DDP model preset: auto (gpt2-125m on GPU, tiny on CPU), tiny, gpt2-125m",
    )
    add("--ddp-batch", type=whole_number, default=0, help="DDP per-rank micro-batch (default: the preset's)")
    add("--ddp-accum", type=whole_number, default=1, help="DDP gradient accumulation steps (default 1)")
    add("--ddp-bucket-mb", type=megabytes, default=25.0, help="DDP bucket_cap_mb (default 25)")
    add("--ddp-steps", type=whole_number, default=10, help="measured synced DDP steps (default 10)")
    add(
        "--ckpt-dir", default=None, help="checkpoint round trip in DIR: must be one filesystem for every node"
    )
    add("--strict", action="store_true", help="exit 1 on warnings too")
    add("--quiet", action="store_true", help="print only findings and the verdict")
    return p


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    args = build_parser().parse_args(argv)
    dtype = DTYPE_ALIASES.get(args.dtype, args.dtype)
    values = dict(
        probes=[name.strip() for name in args.probes.split(",") if name.strip()],
        min_bytes=parse_size(args.min_bytes, "--min-bytes"),
        max_bytes=parse_size(args.max_bytes, "--max-bytes"),
        step_factor=args.step_factor,
        iters=args.iters,
        warmup=args.warmup,
        dtype=dtype,
        op=args.op,
        check=args.check,
        root=args.root,
        backend=args.backend,
        timeout=args.timeout,
        out=Path(args.out) if args.out else None,
        expect_busbw=parse_expect_busbw(args.expect_busbw) if args.expect_busbw else {},
        strict=args.strict,
        quiet=args.quiet,
        ports=parse_ports(args.ports) if args.ports else [],
        ifaces=parse_ifaces(args.ifaces),
        health=args.health,
        straggler_warn=args.straggler_warn,
        straggler_fail=args.straggler_fail,
        sweep=parse_sweep(args.sweep),
        max_combos=args.max_combos,
        sweep_repeats=args.sweep_repeats,
    )
    return BenchConfig(**(values | _ddp_args(args)))


def _ddp_args(args: argparse.Namespace) -> dict:
    only = args.ddp_only
    if only:
        _refuse_with_ddp_only(args)
    return {
        "ddp": not args.no_ddp,
        "ddp_only": only,
        "ddp_model": args.ddp_model,
        "ddp_batch": args.ddp_batch,
        "ddp_accum": args.ddp_accum,
        "ddp_bucket_mb": args.ddp_bucket_mb,
        "ddp_steps": args.ddp_steps,
        "ckpt_dir": Path(args.ckpt_dir) if args.ckpt_dir else None,
        # --ddp-only: nothing else that measures (the network check before init still runs)
        **({"probes": [], "health": False, "ifaces": "off"} if only else {}),
    }


def _refuse_with_ddp_only(args: argparse.Namespace) -> None:
    """Flags about what --ddp-only does not run: one line rather than silence."""
    given = [
        flag
        for flag, was_given in (
            ("--probes", args.probes != ",".join(ALL_PROBES)),
            ("--expect-busbw", args.expect_busbw is not None),
            ("--ifaces", args.ifaces != "auto"),
        )
        if was_given
    ]
    if given:
        raise UsageError(f"--ddp-only runs only the DDP benchmark: drop {', '.join(given)} (or --ddp-only)")


def config_section(config: BenchConfig) -> dict:
    """The report's `config` section: what this run was asked to do (and so what a pass means)."""
    section = dataclasses.asdict(config)
    section["out"] = str(config.out) if config.out else None
    section["ckpt_dir"] = str(config.ckpt_dir) if config.ckpt_dir else None
    section["sizes"] = config.sizes()
    return section


# Flags that may differ between ranks: only rank 0 writes and prints.
PER_RANK_FLAGS = frozenset({"out", "quiet"})


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
                return (
                    f"ranks were started with different flags: {name} is {reference.get(name)!r} on "
                    f"rank 0 but {flags.get(name)!r} on rank {rank} (run the same command on every node)"
                )
    return None
