"""Each rank's exit code, left in a folder for `nccldoctor run` (stdlib only: see signals.py).

torchrun exits 1 whenever any rank exits non-zero, so the report's own code (0 pass, 1 fail,
2 usage, 3 incomplete) is lost to whoever runs torchrun. `nccldoctor run` makes a private
folder and names it in STATUS_DIR_ENV; torchrun hands its environment to the ranks, and every
rank writes the code it leaves with there, from each place the bench leaves by (os._exit: the
end of main, a supervisor's abort, a signal after the verdict). The ranks already agree on one
code; the wrapper reads them back with `read` and judges the rest (nccldoctor.commands.run).

One file per local rank and torchrun restart, named `<restart>.<local rank>.json`: a restarted
group (torchrun --max-restarts) must not count an earlier attempt's codes.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nccldoctor.atomic import write_atomically

STATUS_DIR_ENV = "NCCLDOCTOR_STATUS_DIR"


@dataclass(frozen=True)
class RankStatus:
    """What one rank wrote as it left."""

    local_rank: int
    code: int
    local_world_size: int  # how many ranks torchrun started on this node: who else should write
    restart: int  # torchrun's TORCHELASTIC_RESTART_COUNT when the rank ran


def record(code: int) -> None:
    """Leave this rank's exit code where `nccldoctor run` reads it; nothing outside the wrapper.

    Never raises: the process is about to leave with `code`, whatever happens to this file.
    """
    folder = os.environ.get(STATUS_DIR_ENV)
    if not folder:
        return
    env = os.environ
    status = {
        "code": code,
        "local_rank": int(env.get("LOCAL_RANK", "0")),
        "local_world_size": int(env.get("LOCAL_WORLD_SIZE", "1")),
        "restart": int(env.get("TORCHELASTIC_RESTART_COUNT", "0")),
    }
    path = Path(folder) / f"{status['restart']}.{status['local_rank']}.json"
    with contextlib.suppress(OSError, ValueError):
        write_atomically(path, json.dumps(status))  # the wrapper never reads half a file


def read(folder: Path) -> list[RankStatus]:
    """The codes of the last torchrun attempt that left any, one per rank that wrote one."""
    statuses = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            statuses.append(
                RankStatus(
                    local_rank=int(data["local_rank"]),
                    code=int(data["code"]),
                    local_world_size=int(data["local_world_size"]),
                    restart=int(data["restart"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a rank that wrote garbage wrote nothing the wrapper can trust
    last = max((s.restart for s in statuses), default=0)
    return sorted((s for s in statuses if s.restart == last), key=lambda s: s.local_rank)
