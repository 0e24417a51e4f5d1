"""Signals before and after the supervisor's watch (stdlib only: installed before torch loads).

torchrun SIGTERMs every other rank as soon as one exits non-zero. A rank hit that way
while it is still importing torch, or already tearing down, must still exit with the code
the run deserves, not die of the signal.
"""

from __future__ import annotations

import os
import signal
import sys

from nccldoctor.exitstatus import record as record_exit

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class EarlySignals:
    """Remembers signals that arrive before the supervisor is up, instead of dying of them."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def install(self) -> EarlySignals:
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._remember)
        return self

    def _remember(self, signum: int, frame: object) -> None:
        self.received.append(signum)


def exit_on_signal(code: int) -> None:
    """From now on a handled signal ends the process with `code` (the run's verdict is known)."""

    def leave(signum: int, frame: object) -> None:
        record_exit(code)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    for signum in HANDLED_SIGNALS:
        signal.signal(signum, leave)
