"""torchrun's failure summary, a multi-line block (torch.distributed.elastic ChildFailedError):

    Failures:
    [1]:
      time      : 2024-05-01_12:00:09
      host      : node2
      rank      : 9 (local_rank: 1)
      exitcode  : -6 (pid: 4242)
      error_file: <N/A>
      traceback : Signal 6 (SIGABRT) received by PID 4242
    ------------------------------------------------------------
    Root Cause (first observed failure):
    [0]:
      time      : 2024-05-01_12:00:03
      host      : node1
      rank      : 3 (local_rank: 3)
      exitcode  : -9 (pid: 1234)
      ...

Source: torch/distributed/elastic/multiprocessing/errors/__init__.py (ChildFailedError.format_msg).
Each entry becomes one event: rank_killed for a negative exit code (a signal), else rank_crashed;
the entry under "Root Cause" is marked root. Lines arrive one at a time, so this is a small
state machine fed with the candidate lines of one file, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

HEADER_ROOT = "Root Cause (first observed failure)"
HEADER_OTHERS = "Failures:"
KEYWORDS = (
    HEADER_ROOT,
    HEADER_OTHERS,
    "time      :",
    "host      :",
    "rank      :",
    "exitcode  :",
    "traceback :",
)
# torch pads the names, so a space always precedes the colon ("rank      : 3"), unlike "rank: 3"
_FIELD = re.compile(r"(?:^|\s)(time|host|rank|exitcode|traceback)\s+: (.*)$")
_RANK = re.compile(r"(\d+)(?: \(local_rank: (\d+)\))?")
_EXIT = re.compile(r"(-?\d+)")
_SIGNAL = re.compile(r"Signal \d+ \((\w+)\)")
_PID = re.compile(r"\(pid: (\d+)\)")
SOURCE = "torch/distributed/elastic/multiprocessing/errors/__init__.py (ChildFailedError)"


@dataclass
class Entry:
    root: bool
    fields: dict[str, str] = field(default_factory=dict)
    line_numbers: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def rank(self) -> int | None:
        m = _RANK.match(self.fields.get("rank", ""))
        return int(m[1]) if m else None

    @property
    def local_rank(self) -> int | None:
        m = _RANK.match(self.fields.get("rank", ""))
        return int(m[2]) if m and m[2] else None

    @property
    def exitcode(self) -> int | None:
        m = _EXIT.match(self.fields.get("exitcode", ""))
        return int(m[1]) if m else None

    @property
    def pid(self) -> str | None:
        m = _PID.search(self.fields.get("exitcode", ""))
        return m[1] if m else None

    @property
    def signal(self) -> str | None:
        m = _SIGNAL.search(self.fields.get("traceback", ""))
        return m[1] if m else None


def is_field(text: str) -> bool:
    return _FIELD.search(text) is not None


class BlockReader:
    """Feed it the candidate lines of one file; it returns each finished entry once."""

    def __init__(self) -> None:
        self.section: bool | None = None  # None: not in a block; else "is the root section"
        self.entry: Entry | None = None

    def feed(self, number: int, text: str) -> Entry | None:
        if HEADER_ROOT in text or HEADER_OTHERS in text:
            done = self.close()
            self.section = HEADER_ROOT in text
            return done
        m = _FIELD.search(text)
        if not m:
            return None
        if self.section is None:  # an excerpt that starts inside the block: its root is unknown
            if m[1] != "time":
                return None
            self.section = False
        done = self.close() if m[1] == "time" else None
        if self.entry is None:
            self.entry = Entry(root=self.section)
        self.entry.fields.setdefault(m[1], m[2].strip())
        self.entry.line_numbers.append(number)
        self.entry.lines.append(text)
        if m[1] == "traceback":  # an entry's last field: it is done before the next line comes
            return done or self.close()
        return done

    def close(self) -> Entry | None:
        """The entry in progress, if it says which rank (end of file, next header)."""
        entry, self.entry = self.entry, None
        return entry if entry is not None and entry.rank is not None else None
