"""Launching the real bench: under torchrun --standalone (Gloo), or as one plain process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

HELPERS = Path(__file__).parent / "helpers"
FAULTY_BENCH = HELPERS / "faulty_bench.py"
# Small and quick: correctness and diagnosis do not need big buffers.
# DDP, the health phase and report.html have tests of their own, and each costs a run seconds:
# a test that looks at one of them turns it back on (`--health on`, no `--no-html`).
QUICK = ["-e", "64K", "-n", "3", "-w", "1", "--no-ddp", "--health", "off", "--no-html"]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    out_dir: Path

    @property
    def report(self) -> dict:
        return json.loads((self.out_dir / "report.json").read_text())

    def rank_exit_codes(self) -> dict[int, int]:
        """Each failed rank's exit code, from torchrun's failure summary (empty: all exited 0)."""
        pairs = re.findall(r"rank\s*:\s*(\d+) \(local_rank.*?\n\s*exitcode\s*:\s*(-?\d+)", self.stderr)
        return {int(rank): int(code) for rank, code in pairs}

    def findings(self, code: str) -> list[dict]:
        return [f for f in self.report["findings"] if f["code"] == code]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RANK", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _launch(cmd: list[str], out_dir: Path, timeout: float, cwd: Path | None = None) -> Run:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=cwd)
    return Run(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start, out_dir)


def torchrun(
    nproc: int, args: list[str], out_dir: Path, *, fault: list[str] | None = None, timeout: float = 180
) -> Run:
    """torchrun --standalone with `nproc` Gloo ranks; `fault` runs tests/helpers/faulty_bench.py."""
    target = [str(FAULTY_BENCH), *fault] if fault else ["-m", "nccldoctor.bench"]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        *target,
        "--out",
        str(out_dir),
        *args,
    ]
    return _launch(cmd, out_dir, timeout)


def single(args: list[str], out_dir: Path, *, timeout: float = 120, cwd: Path | None = None) -> Run:
    """python -m nccldoctor.bench, no launcher: one rank of its own."""
    return _launch([sys.executable, "-m", "nccldoctor.bench", *args], out_dir, timeout, cwd)


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "report"


# Property tests (tests/test_fuzz_*.py): derandomized by default, so CI and every developer see
# the same examples and a failure reproduces; HYPOTHESIS_PROFILE=explore searches afresh, longer.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
