"""The report folder, shared by the bench and preflight (no torch here: preflight stays fast)."""

from __future__ import annotations

import datetime
from pathlib import Path

from nccldoctor.errors import UsageError

DEFAULT_OUT_ROOT = Path("nccldoctor-out")
REPORT_FILES = ("report.json", "results.csv", "report.md", "exclude.txt", "junit.xml", "nccldoctor.prom")


def prepare_out_dir(out: Path | None, label: str = "") -> Path:
    """--out DIR itself, or a new ./nccldoctor-out/[label-]<timestamp>/; unwritable -> UsageError."""
    if out is None:
        stamp = label + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = DEFAULT_OUT_ROOT / stamp
        suffix = 1
        while out.exists():
            suffix += 1
            out = DEFAULT_OUT_ROOT / f"{stamp}-{suffix}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in REPORT_FILES:  # a reused --out must never show an older run's verdict
            (out / stale).unlink(missing_ok=True)
        probe = out / ".nccldoctor-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out: cannot write to {out}: {exc.strerror or exc}") from None
    return out
