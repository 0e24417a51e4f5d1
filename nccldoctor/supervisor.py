"""Deadlines, heartbeats and the orderly end of a run that cannot complete.

Every rank runs one supervisor thread. It beats into the rendezvous store (a counter per
rank plus the index of the step the rank is in), watches the run's deadline, listens for
SIGTERM/SIGINT/SIGHUP and for another rank's abort. It works while the main thread is
blocked inside a collective: collectives release the GIL, and signals reach it through
signal.set_wakeup_fd, which the C handler writes even when no Python code can run.

When the run cannot complete (a deadline, a signal, an exception, a peer's abort), every
rank posts why it stopped, the lowest live rank (rank 0 if it lives) writes the partial
report, and all of them exit 3. Liveness is judged by heartbeats: a rank that neither
beats nor posted a status died or froze without a word.

Nobody waits for the deadline to find such a rank: each rank also watches the next one's
heartbeat counter (rank r watches r+1, the last watches rank 0: every rank is watched, one
store read per beat each, whatever the job's size), and a peer silent for `silence_s` ends
the run at once. When the run ends, every rank posts the state of the other ranks' processes
on its own node (psutil: a stopped or D-state process is frozen, a missing one is dead), so
the report can tell a frozen rank from a crashed one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import torch.distributed as dist

from nccldoctor.errors import UsageError
from nccldoctor.exitstatus import record as record_exit
from nccldoctor.findings import EXIT_INCOMPLETE, EXIT_USAGE
from nccldoctor.signals import HANDLED_SIGNALS, exit_on_signal
from nccldoctor.storeio import get_many, read_counters

HEARTBEAT_S = 0.5  # beat and poll period
LIVENESS_WINDOW_S = 2.0  # a rank that has not beaten for this long and said nothing is gone
DEFAULT_SILENCE_S = 15.0  # a watched peer silent this long ends the run (--silence)
WRITER_WAIT_S = 20.0  # how long a non-writer waits for the partial report before exiting
STATUS_INDEX = "status_ranks"  # "3,17," : the ranks that posted a status/{rank}

# How an exception raised by a collective reads when the fault is another rank's or the
# network's rather than this rank's own.
_COMM_MARKERS = (
    "connection closed by peer",
    "connection reset",
    "broken pipe",
    "gloo",
    "nccl",
    "socket",
    "timed out",
    "timeout",
)


# Stops that are usually the consequence of another rank's failure.
_CONSEQUENTIAL_KINDS = frozenset({"signal", "comm", "timeout", "deadline"})


@dataclass(frozen=True)
class Cause:
    """Why a rank stopped.

    kind: error (its own exception), comm (a collective failed under it), timeout (a
    collective timed out), deadline, signal, usage (bad input found after start), peer
    (another rank aborted; `origin` holds that rank's cause).
    """

    kind: str
    message: str
    origin: dict[str, Any] | None = None

    @property
    def root_kind(self) -> str:
        return self.origin["kind"] if self.origin else self.kind


def cause_of(exc: BaseException) -> Cause:
    """Classify an exception from the main thread."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, UsageError):
        return Cause("usage", text)
    lowered = str(exc).lower()
    is_comm = isinstance(exc, dist.DistError) or any(m in lowered for m in _COMM_MARKERS)
    if is_comm:
        kind = "timeout" if ("timed out" in lowered or "timeout" in lowered) else "comm"
        return Cause(kind, f"{type(exc).__name__}: {text}")
    return Cause("error", f"{type(exc).__name__}: {text}")


@dataclass(frozen=True)
class RankState:
    """What the store says about one rank when the run is being ended."""

    rank: int
    joined: bool  # it beat at least once or posted a status
    alive: bool  # it beat during the liveness window or posted a status
    step: int  # index of the last step it entered (-1: none)
    status: dict[str, Any] | None  # why it stopped, in its own words: kind, message, label


class Supervisor:
    """One per rank. Use as a context manager around the run (from the main thread)."""

    def __init__(
        self,
        *,
        rank: int,
        world_size: int,
        store: dist.Store,
        step_store: dist.Store | None = None,
        deadline_s: float,
        heartbeat_s: float = HEARTBEAT_S,
        silence_s: float | None = DEFAULT_SILENCE_S,
    ) -> None:
        self.rank = rank
        self.world_size = world_size
        self.store = store  # the supervisor's own client: beats never queue behind the main thread
        self.step_store = step_store or store  # the main thread's client, for enter()
        self.deadline = time.monotonic() + deadline_s
        self.heartbeat_s = heartbeat_s
        self.silence_s = silence_s  # None: only the deadline ends a silent peer's run
        self._peer_beats, self._peer_heard = 0, time.monotonic()  # the watched peer's counter
        self.labels: list[str] = []  # step index -> label; the same plan on every rank
        # Set by the bench: write the partial report (writer only), stop the progress display.
        self.on_incomplete: Callable[[Cause, list[RankState]], None] = lambda cause, states: None
        self.on_stop_display: Callable[[], None] = lambda: None
        # Set by the bench: the process state of the other ranks on this node, {rank: state}.
        self.local_processes: Callable[[], dict[int, str]] = dict
        self._lock = threading.Lock()
        self._phase = "running"  # running -> ending (abort/finish claimed) -> done
        self.exit_code: int | None = None  # the run's code, once finish() knows it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="nccldoctor-supervisor", daemon=True)
        self._wakeup_r, self._wakeup_w = socket.socketpair()
        self._old_handlers: dict[int, Any] = {}
        self._old_wakeup_fd = -1

    # -- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> Supervisor:
        self._install_signal_wakeup()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.heartbeat_s + 1)
        self._restore_signals()
        if self.exit_code is not None:
            # Teardown may outlast a peer's exit, and torchrun then SIGTERMs this rank.
            exit_on_signal(self.exit_code)

    def remaining_s(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def enter(self, label: str) -> None:
        """The main thread starts a new step; the store knows at once where this rank got to.

        One store round trip per step (never inside a timed loop), so a rank that dies the
        next instant is still reported at the right step.
        """
        self.labels.append(label)
        self.step_store.add(f"step/{self.rank}", 1)

    @property
    def step(self) -> int:
        return len(self.labels) - 1

    def label(self, step: int) -> str:
        return self.labels[step] if 0 <= step < len(self.labels) else f"step #{step}"

    # -- the normal end --------------------------------------------------------------------
    def finish(self, exit_code: int | None) -> int:
        """Writer: announce `exit_code`. Others (exit_code None): wait for the writer's code.

        Non-writers wait so that none exits (possibly non-zero, which makes torchrun kill the
        rest) before the report is on disk; every rank then exits with the same code.
        """
        if exit_code is not None:
            self.store.set("done", str(exit_code))
        else:
            if not self._wait_key("done", self.remaining_s()):
                self.abort(Cause("deadline", "rank 0 did not finish writing the report in time"))
            exit_code = int(self.store.get("done"))
        if not self._claim("done"):
            self._park()
        self.exit_code = exit_code
        return exit_code

    # -- the abnormal end ------------------------------------------------------------------
    def abort(self, cause: Cause) -> NoReturn:
        """End the run from any thread: post why, let the writer write, exit (2 or 3)."""
        if not self._claim("ending"):
            self._park()  # another thread is already ending the run; it will exit the process
        cause = self._root_cause(cause)
        code = EXIT_USAGE if cause.root_kind == "usage" else EXIT_INCOMPLETE
        try:
            self.on_stop_display()
            finished = self._finished_code()
            if finished is not None:  # the run had already ended well: exit as the writer said
                code = finished
            elif cause.root_kind == "usage":
                self._end_usage(cause)
            else:
                self._end_incomplete(cause)
        except Exception as exc:  # the store itself is gone: nothing is left to coordinate
            print(
                f"nccldoctor: rank {self.rank}: could not coordinate the end of the run: {exc}",
                file=sys.stderr,
            )
        record_exit(code)  # for `nccldoctor run`: torchrun itself only says "a rank failed"
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def _root_cause(self, cause: Cause) -> Cause:
        """A stop that follows another rank's abort (its collectives failed, torchrun killed
        it) takes that rank's cause as its root, so every rank exits with the same code."""
        if cause.kind not in _CONSEQUENTIAL_KINDS or cause.origin is not None:
            return cause  # its own bad input or exception is this rank's own story
        try:
            if not self.store.check(["abort"]):
                return cause
            origin = json.loads(self.store.get("abort"))
        except Exception:
            return cause
        if origin["rank"] == self.rank:
            return cause
        return Cause(cause.kind, cause.message, origin)

    def _end_usage(self, cause: Cause) -> None:
        self._post(cause)
        origin = cause.origin or {"rank": self.rank, "message": cause.message}
        if self.rank == 0:
            where = "" if origin["rank"] == 0 else f"rank {origin['rank']}: "
            print(f"nccldoctor: error: {where}{origin['message']}", file=sys.stderr)

    def _end_incomplete(self, cause: Cause) -> None:
        self._post(cause)
        states = self._observe()
        alive = [s.rank for s in states if s.alive]
        writer = min(alive, default=self.rank)
        mine = str(self.rank).encode()
        if writer == self.rank and self.store.compare_set("writer", "", mine) == mine:
            self.on_incomplete(cause, states)
            self.store.set("done", str(EXIT_INCOMPLETE))
            return
        self._wait_key("done", WRITER_WAIT_S)  # bounded: the writer may die too

    def _post(self, cause: Cause) -> None:
        """Say why this rank stops (its status), and tell the others (the abort key)."""
        status = {
            "kind": cause.kind,
            "message": cause.message,
            "step": self.step,
            "label": self.label(self.step),
            "local": self._local_processes(),
        }
        self.store.set(f"status/{self.rank}", json.dumps(status))
        self.store.append(STATUS_INDEX, f"{self.rank},")  # the writer reads only the ranks listed
        self.store.add("stopped", 1)
        origin = cause.origin or {"rank": self.rank, "kind": cause.kind, "message": cause.message}
        self.store.compare_set("abort", "", json.dumps(origin))

    def _local_processes(self) -> dict[str, str]:
        """{rank: process state} of this node's other ranks, as JSON keys ({} if unknown)."""
        try:
            return {str(rank): state for rank, state in self.local_processes().items()}
        except Exception:  # evidence, not a reason to fail the end of the run
            return {}

    def _observe(self) -> list[RankState]:
        """Wait (bounded) until every rank has either posted a status or proven silent."""
        first = self._counters("beat")
        give_up = time.monotonic() + LIVENESS_WINDOW_S
        while self.store.add("stopped", 0) < self.world_size and time.monotonic() < give_up:
            time.sleep(0.1)
        last, steps = self._counters("beat"), self._counters("step")
        statuses = self._statuses()
        states = []
        for rank, status in enumerate(statuses):
            states.append(
                RankState(
                    rank=rank,
                    joined=last[rank] > 0 or steps[rank] > 0 or status is not None,
                    alive=status is not None or last[rank] > first[rank],
                    step=status["step"] if status else steps[rank] - 1,
                    status=status,
                )
            )
        return states

    def _counters(self, name: str) -> list[int]:
        # Batched (storeio): a counter a rank never wrote reads 0; not one round trip per rank.
        return read_counters(self.store, [f"{name}/{rank}" for rank in range(self.world_size)])

    def _statuses(self) -> list[dict[str, Any] | None]:
        """Every rank's posted status (None: it posted none), from the index of ranks that
        posted: usually a few of thousands, so no key is looked for that is not there."""
        index = self.store.get(STATUS_INDEX).decode() if self.store.check([STATUS_INDEX]) else ""
        posted = sorted({int(r) for r in index.split(",") if r})
        statuses: list[dict[str, Any] | None] = [None] * self.world_size
        for rank, raw in zip(posted, get_many(self.store, [f"status/{r}" for r in posted]), strict=True):
            statuses[rank] = json.loads(raw)
        return statuses

    def _wait_key(self, key: str, timeout_s: float) -> bool:
        # Polls rather than store.wait(): a blocking wait holds the client's lock and would
        # stall this rank's heartbeats, making it look dead to the others.
        give_up = time.monotonic() + timeout_s
        while not self.store.check([key]):
            if time.monotonic() >= give_up:
                return False
            time.sleep(0.05)
        return True

    def _finished_code(self) -> int | None:
        return int(self.store.get("done")) if self.store.check(["done"]) else None

    def _claim(self, phase: str) -> bool:
        with self._lock:
            if self._phase != "running":
                return False
            self._phase = phase
            return True

    @staticmethod
    def _park() -> NoReturn:
        while True:
            time.sleep(3600)

    # -- the watching thread ---------------------------------------------------------------
    def _watch(self) -> None:
        signum = None  # beat at once: a rank may die before the first period ends
        while not self._stop.is_set():
            if self._phase == "running":
                try:
                    cause = self._check(signum)
                except Exception as exc:  # the store is unreachable: the job is lost
                    cause = Cause("comm", f"rendezvous store unreachable: {exc}")
                if cause is not None:
                    self.abort(cause)
            signum = self._wait_for_signal(self.heartbeat_s)

    def _check(self, signum: int | None) -> Cause | None:
        self.store.add(f"beat/{self.rank}", 1)
        if signum is not None:
            return Cause("signal", f"received {signal.Signals(signum).name}")
        if time.monotonic() > self.deadline:
            return Cause("deadline", "the run's deadline (--timeout) passed")
        if self.store.check(["abort"]):
            origin = json.loads(self.store.get("abort"))
            if origin["rank"] != self.rank:
                return Cause("peer", f"rank {origin['rank']} stopped: {origin['message']}", origin)
        return self._silent_peer()

    @property
    def watched(self) -> int | None:
        """The rank whose heartbeats this rank watches (None alone, or with --silence off)."""
        if self.world_size < 2 or self.silence_s is None:
            return None
        return (self.rank + 1) % self.world_size

    def _silent_peer(self) -> Cause | None:
        """A Cause when the watched rank has beaten before and then not for silence_s, while
        the run goes on (it neither finished nor said why it stopped)."""
        peer = self.watched
        if peer is None:
            return None
        beats, now = self.store.add(f"beat/{peer}", 0), time.monotonic()
        if beats != self._peer_beats:
            self._peer_beats, self._peer_heard = beats, now
            return None
        silent_s = now - self._peer_heard
        if beats == 0 or silent_s < self.silence_s:  # not started yet: the deadline covers that
            return None
        if self.store.check(["done"]) or self.store.check([f"status/{peer}"]):
            return None  # it finished, or is ending and said why
        return Cause(
            "silent",
            f"rank {peer} sent no heartbeat for {silent_s:.0f} s (--silence {self.silence_s:g}): "
            "frozen, killed or cut off from the rendezvous store",
        )

    def _wait_for_signal(self, timeout_s: float) -> int | None:
        self._wakeup_r.settimeout(timeout_s)
        try:
            data = self._wakeup_r.recv(64)
        except (TimeoutError, BlockingIOError, OSError):
            return None
        return data[-1] if data else None

    def _install_signal_wakeup(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be routed from the main thread (e.g. in unit tests)
        self._wakeup_w.setblocking(False)
        self._old_wakeup_fd = signal.set_wakeup_fd(self._wakeup_w.fileno(), warn_on_full_buffer=False)
        for signum in HANDLED_SIGNALS:
            # A no-op Python handler: the C handler still writes the number to the wakeup fd,
            # and the main thread is not interrupted (the supervisor ends the run).
            self._old_handlers[signum] = signal.signal(signum, lambda *_: None)

    def _restore_signals(self) -> None:
        if not self._old_handlers:
            return
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._old_wakeup_fd)
