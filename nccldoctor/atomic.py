"""Write a file whole or not at all: a temporary file in the same folder, fsync'd, renamed.

Every report file goes through `write_atomically`. A reader (`nccldoctor show`, a gate's script,
node_exporter's textfile collector) then sees the previous file or the new one, never a torn
one, even when the disk fills up, the filesystem turns read-only or the process is killed
mid-write; and a failed write leaves no temporary file behind. stdlib only: preflight and
explain use it without torch.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_name(path: Path) -> Path:
    """`.report.json.<pid>.<random>.tmp` beside `path`: hidden, and ending in .tmp so no reader
    globbing `*.json` or `*.prom` takes it for a report; unique, so two writers never share one."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def leftover_temps(folder: Path, name: str) -> list[Path]:
    """Temporary files for `name` that a killed writer (SIGKILL: no cleanup ran) left in `folder`."""
    return sorted(folder.glob(f".{name}.*{TEMP_SUFFIX}"))


def write_atomically(path: Path, data: str | bytes) -> None:
    """Replace `path` by `data` (str: UTF-8) in one step; on any error the old file is untouched,
    the temporary file is removed and the error (ENOSPC, EROFS, EDQUOT, ...) is raised."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    temp = temp_name(path)
    # 0o666 less the umask, as open() would give: mkstemp's 0o600 would hide the report from
    # the gate's user.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        try:
            _write_all(fd, payload)
            # Before the rename: without it a crash after the rename can leave an empty file
            # under the new name (delayed allocation), and NFS reports ENOSPC here, not in write.
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _sync_folder(path.parent)


def _write_all(fd: int, payload: bytes) -> None:
    # os.write may write less than asked (a signal, a nearly full disk): loop until all is written.
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable. Best effort: the file is already whole under its name,
    and some filesystems refuse to open or fsync a folder."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
