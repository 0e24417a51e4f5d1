"""A progress bar on rank 0 while probes run (plain lines when stdout is not a terminal)."""

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
        self._last_group = ""

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
            group = label.split(" ", 1)[0]
            if group != self._last_group:  # one plain line per probe, not per size
                self._last_group = group
                self.console.print(f"[{self._done}/{self._total}] {group}")

    def stop(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
