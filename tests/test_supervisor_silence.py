"""The silence watch: each rank watches the next one's heartbeats and ends the run when they
stop, long before the deadline (a frozen, dead or cut-off rank)."""

import pytest
import torch.distributed as dist

from nccldoctor import supervisor as supervisor_module
from nccldoctor.runner import process_state
from nccldoctor.supervisor import Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(supervisor_module.time, "monotonic", fake)
    return fake


def watcher(store, rank=0, world_size=4, silence_s=15.0):
    return Supervisor(rank=rank, world_size=world_size, store=store, deadline_s=300, silence_s=silence_s)


def test_every_rank_watches_the_next_and_the_last_watches_rank_0():
    store = dist.HashStore()
    assert [watcher(store, rank=r).watched for r in range(4)] == [1, 2, 3, 0]
    assert watcher(store, rank=0, world_size=1).watched is None
    assert watcher(store, silence_s=None).watched is None


def test_a_peer_that_stops_beating_is_named_after_the_silence_not_before(clock):
    store = dist.HashStore()
    sup = watcher(store, rank=1)  # watches rank 2
    store.add("beat/2", 1)
    assert sup._silent_peer() is None
    clock.now += 14.0
    assert sup._silent_peer() is None  # silent for 14 s: not yet
    clock.now += 2.0
    cause = sup._silent_peer()
    assert cause.kind == "silent" and cause.message.startswith("rank 2 sent no heartbeat for 16 s")


def test_each_beat_restarts_the_silence(clock):
    store = dist.HashStore()
    sup = watcher(store, rank=1)
    for _ in range(10):
        store.add("beat/2", 1)
        clock.now += 10.0
        assert sup._silent_peer() is None


@pytest.mark.parametrize("key", ["done", "status/2"])
def test_a_peer_that_finished_or_said_why_it_stops_is_not_silent(clock, key):
    store = dist.HashStore()
    sup = watcher(store, rank=1)
    store.add("beat/2", 1)
    sup._silent_peer()
    store.set(key, "x")
    clock.now += 60.0
    assert sup._silent_peer() is None


def test_a_peer_that_never_beat_is_left_to_the_deadline(clock):
    sup = watcher(dist.HashStore(), rank=1)
    clock.now += 60.0
    assert sup._silent_peer() is None  # still starting (imports on a slow node); --timeout covers it


def test_the_process_states_a_node_peer_reports():
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 10  # just started, it may still be loading from disk (D)
        while process_state(child.pid) == "disk-sleep" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_state(child.pid) in ("sleeping", "running")
        child.send_signal(supervisor_module.signal.SIGSTOP)
        deadline = time.monotonic() + 10  # a loaded machine delivers the signal late, not never
        while process_state(child.pid) != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process_state(child.pid) == "stopped"
    finally:
        child.kill()
        child.wait()
    assert process_state(child.pid) == "gone"
