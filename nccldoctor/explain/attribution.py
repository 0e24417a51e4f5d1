"""Who wrote a log line and when: the prefixes launchers and libraries put in front of it.

- torchrun (torch >= 2.2 prints the global rank): `[rank3]:...`; `--tee`/`--log-dir` files and
  older torchrun: `[default3]:` (role name + LOCAL rank).
- Slurm `srun -l`: `3: ...` (the task id, which is the global rank under torchrun-less launches);
  mpirun --tag-output: `[1,3]<stdout>:` (job id, rank); pdsh: `node01: ` (a host name with a digit).
- NCCL: `host:pid:tid [cudaDev] NCCL WARN ...` (the bracket is the CUDA device, usually the
  local rank; misc/debug.cc).
- torch's C++ logging: `[PG ID 0 PG GUID 0 Rank 3]`, `[Rank 3]` inside the message.
- Timestamps: ISO-like (`2024-05-01 12:00:03,123`, `2024-05-01T12:00:03`, torchrun's
  `2024-05-01_12:00:03`) and glog's `E0501 12:00:03.123456` (no year: sorted within one log).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Launchers and terminals may put a pid or colour code first ("[80746] [rank0]:", "\x1b[0m ").
_TORCHRUN_RANK = re.compile(r"^.{0,24}?\[rank(\d+)\]:")
_TORCHRUN_LOCAL = re.compile(
    r"^\[[A-Za-z_]*?(\d+)(?:\|\d+)?\]:"
)  # [default3]:, [trainer0|0]: role+local rank
_MPIRUN = re.compile(r"^\[\d+,(\d+)\]<std(?:out|err)>:")  # mpirun --tag-output: [jobid,rank]
_PDSH = re.compile(r"^([a-z][\w-]*\d[\w.-]*): ")  # pdsh/clush "node01: "; a digit tells it from "Error: "
_SLURM = re.compile(r"^\s{0,4}(\d{1,6}): ")
# "host:pid:tid [dev] NCCL WARN", newer releases with the source file: "[dev] misc/socket.cc:71 NCCL WARN"
# (pid and tid may be anonymised as XXXX, the tid may be missing)
_NCCL = re.compile(
    r"(?:^|[\s:\]])([A-Za-z0-9][\w.-]*):(\w+)(?::\w+)? \[(\d+)\] (?:[\w/.-]+:\d+ )?NCCL (?:INFO|WARN)"
)
_TORCH_RANK = re.compile(r"\[(?:PG [^\]]*?)?Rank (\d+)\]")
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[ T_](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,6}))?")
_GLOG = re.compile(r"\b[IWEF](\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{1,6})\b")


@dataclass
class Who:
    rank: int | None = None
    local_rank: int | None = None
    host: str | None = None
    device: int | None = None
    pid: str | None = None  # NCCL's: all lines of one process are one rank
    time: float | None = None  # seconds on a comparable scale (not an epoch: no time zone)
    rest: str = ""  # the line without the launcher prefix (what the signatures read)


def attribute(line: str) -> Who:
    """Every prefix this line carries; the outermost launcher prefix is read first."""
    who = Who()
    rest = line
    if m := _TORCHRUN_RANK.match(rest):
        who.rank, rest = int(m[1]), rest[m.end() :]
    elif m := _TORCHRUN_LOCAL.match(rest):
        who.local_rank, rest = int(m[1]), rest[m.end() :]
    elif (m := _MPIRUN.match(rest)) or (m := _SLURM.match(rest)):
        who.rank, rest = int(m[1]), rest[m.end() :]
    elif (m := _PDSH.match(rest)) and not _NCCL.match(rest):
        who.host, rest = m[1], rest[m.end() :]
    if who.rank is None and (m := _TORCH_RANK.search(rest)):
        who.rank = int(m[1])
    if m := _NCCL.search(rest):
        who.host, who.pid, who.device = m[1], m[2], int(m[3])
    who.time = timestamp(rest)
    who.rest = rest
    return who


def timestamp(text: str) -> float | None:
    """The first timestamp in the text as seconds within a year (month*31 days + ...: for
    ordering, not an epoch)."""
    if m := _ISO.search(text):
        _year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        frac = float(f"0.{m[7]}") if m[7] else 0.0
        # The year is left out so that glog's year-less stamps compare with ISO ones (a job that
        # spans New Year's Eve sorts wrongly; one that mixes the two formats is far more common).
        return _seconds(month, day, hour, minute, second) + frac
    if m := _GLOG.search(text):
        month, day, hour, minute, second = (int(g) for g in m.groups()[:5])
        return _seconds(month, day, hour, minute, second) + float(f"0.{m[6]}")
    return None


def _seconds(month: int, day: int, hour: int, minute: int, second: int) -> float:
    # Monotonic in the calendar is all that ordering needs; exact day counts are not.
    return (((month * 31 + day) * 24 + hour) * 60 + minute) * 60.0 + second
