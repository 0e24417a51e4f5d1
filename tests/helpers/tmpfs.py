"""A real, small tmpfs for --out: a disk that fills up or turns read-only (root needed)."""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "64k") -> Iterator[Path]:
    """Mount a tmpfs of `size` at `where` (skip the test where mounting is not allowed);
    always unmounted afterwards, even when the test fails."""
    where.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root needed): {mount.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path, name: str = "filler") -> int:
    """Write into folder/name until the filesystem is full; the bytes written."""
    written = 0
    with open(folder / name, "wb", buffering=0) as handle:
        block = b"\0" * 4096
        while True:
            try:
                written += handle.write(block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                return written


def read_only(folder: Path) -> None:
    """Remount the tmpfs at `folder` read-only, as a filesystem that hit an error does."""
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def leftovers(folder: Path) -> list[str]:
    """Temporary files in `folder`, hidden ones included."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))
