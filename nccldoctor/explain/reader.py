"""Logs in, candidate lines out: streaming, in big binary chunks, never a whole file in memory.

A GB of logs is mostly lines no signature could match (step losses, NCCL INFO chatter), so
prefilter.py picks the lines of a chunk that hold one of the catalogue's anchors, and only
those are decoded and handed on. Gzip is recognised by its magic bytes, not the name;
bytes that are not UTF-8 become U+FFFD; a line longer than MAX_LINE is cut (a binary blob with
no newline cannot make one line of a gigabyte).
"""

from __future__ import annotations

import gzip
import io
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from nccldoctor.explain.prefilter import candidate_spans

CHUNK = 4 << 20
MAX_LINE = 8192
CONTEXT = 512
GZIP_MAGIC = b"\x1f\x8b"
# A run of digits longer than any rank, pid, port or count: the signatures' (\d+) fields go to
# int(), which refuses more than 4300 digits (ValueError). Real logs never hold such a run;
# junk and corrupted files do, so it is cut, with a mark, before any pattern sees it.
MAX_DIGITS = 40
_DIGIT_RUN = re.compile(rf"\d{{{MAX_DIGITS},}}")


@dataclass
class FileStats:
    name: str
    lines: int = 0
    bytes: int = 0
    error: str | None = None  # why reading stopped early (a truncated gzip, an I/O error)


@dataclass(frozen=True)
class Line:
    file: str
    number: int  # 1-based
    text: str
    before: str = ""  # up to CONTEXT bytes before it: a traceback's last line has no timestamp,
    # the line that logged before it usually has


@dataclass
class Source:
    name: str  # as the user gave it ("-" for stdin), or the file inside a folder
    path: Path | None = None  # None: stdin (or `data`)
    data: bytes | None = None  # text already in memory: a rank's last error in a partial report
    stats: FileStats = field(init=False)

    def __post_init__(self) -> None:
        self.stats = FileStats(self.name)


def expand(paths: Iterable[str]) -> list[Source]:
    """Files as given, folders as their files (recursively, sorted), `-` as stdin.
    A path that does not exist raises FileNotFoundError (the command's usage error)."""
    sources = []
    for given in paths:
        if given == "-":
            sources.append(Source("-"))
            continue
        path = Path(given)
        if path.is_dir():
            sources += [Source(str(p), p) for p in sorted(path.rglob("*")) if p.is_file()]
        elif path.is_file():
            sources.append(Source(given, path))
        else:
            raise FileNotFoundError(given)
    return sources


def _open(source: Source) -> BinaryIO:
    if source.data is not None:
        return io.BufferedReader(io.BytesIO(source.data))  # type: ignore[arg-type]
    raw: BinaryIO = sys.stdin.buffer if source.path is None else open(source.path, "rb")  # noqa: SIM115
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered)  # type: ignore[return-value]
    return buffered


def candidate_lines(source: Source, keywords: tuple[bytes, ...]) -> Iterator[Line]:
    """The lines of one source that hold any keyword, with their line numbers."""
    stats = source.stats
    try:
        stream = _open(source)
    except OSError as exc:
        stats.error = str(exc)
        return
    with stream:
        yield from _scan(stream, source.name, keywords, stats)


def _scan(stream: BinaryIO, name: str, keywords: tuple[bytes, ...], stats: FileStats) -> Iterator[Line]:
    carry = b""
    lineno = 1  # the number of the first line in `chunk`
    while True:
        block = _read_chunk(stream, stats)
        stats.bytes += len(block)
        chunk = carry + block
        if not block:
            if chunk:
                yield from _lines_in(chunk, name, lineno, keywords)
                stats.lines = lineno
            else:
                stats.lines = lineno - 1
            return
        cut = chunk.rfind(b"\n") + 1
        if cut == 0 and len(chunk) > MAX_LINE:  # no newline in a long run: cut it anyway
            cut = len(chunk)
        whole, carry = chunk[:cut], chunk[cut:]
        yield from _lines_in(whole, name, lineno, keywords)
        lineno += whole.count(b"\n")


def _read_chunk(stream: BinaryIO, stats: FileStats) -> bytes:
    """Up to CHUNK bytes; a truncated or corrupt gzip keeps what it decompressed before the fault."""
    if stats.error:
        return b""
    parts: list[bytes] = []
    size = 0
    try:
        while size < CHUNK:
            part = stream.read1(CHUNK - size)
            if not part:
                break
            parts.append(part)
            size += len(part)
    except (OSError, EOFError, ValueError) as exc:
        stats.error = f"read stopped: {exc}"
    return b"".join(parts)


def _lines_in(chunk: bytes, name: str, first: int, anchors: tuple[bytes, ...]) -> Iterator[Line]:
    for index, start, end in candidate_spans(chunk, anchors):
        raw = chunk[start : min(end, start + MAX_LINE)]
        before = _decode(chunk[max(0, start - CONTEXT) : start])
        yield Line(name, first + index, _decode(raw).rstrip("\r"), before)


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return _DIGIT_RUN.sub(lambda m: m[0][:MAX_DIGITS] + "\u2026", text) if len(text) > MAX_DIGITS else text
