"""A progress bar on rank 0 while probes run (plain lines when stdout is not a terminal).

Labels are "phase: step" (stragglers: look 2 of 3, settings sweep: NCCL_ALGO=Ring (round 1))
or a collective's "name size mode" (all_reduce 64K in-place). In plain lines, a log or a pipe,
each phase step gets its own complete line, while a collective gets one line, its name, rather
than one per size and mode: a log of several hundred sizes would bury the phases.
"""

from __future__ import annotations

import threading

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class ProgressDisplay:
    def __init__(self, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(highlight=False)  # rank 0's stdout
        self._lock = threading.Lock()  # stop() may come from the supervisor thread
        self._bar: Progress | None = None
        self._task = None
        self._done = 0
        self._total = 0
        self._last_line = ""

    def start(self, total: int) -> None:
        if not self.enabled:
            return
        self._total = total
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("{task.description:<40}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._bar.add_task("starting", total=total)
            self._bar.start()

    def advance(self, label: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._done += 1
            if self._bar is not None:
                self._bar.update(self._task, completed=self._done - 1, description=label)
                return
            line = plain_line(label)
            if line != self._last_line:
                self._last_line = line
                # Not markup, and never wrapped: a pipe's 80 columns must not split a line.
                text = f"[{self._done}/{self._total}] {line}"
                self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None


def plain_line(label: str) -> str:
    """What a plain progress line says: a phase step whole, a collective's steps by its name."""
    return label if ":" in label else label.split(" ", 1)[0]
