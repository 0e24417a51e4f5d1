"""Rank 0's reads of per-rank data: round trips grow with N/chunk, never with N."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
import torch.distributed as dist

from nccldoctor import storeio
from nccldoctor.runner import _available_rank_infos
from nccldoctor.runtime import RankInfo, read_rank_infos
from nccldoctor.supervisor import Supervisor

WORLD = 8192  # 1,024 nodes x 8 ranks


class CountingStore:
    """A real in-memory store that counts each request (one request = one round trip on TCP)."""

    def __init__(self) -> None:
        self.inner = dist.HashStore()
        self.trips = 0

    def __getattr__(self, name: str):
        method = getattr(self.inner, name)

        def counted(*args, **kwargs):
            self.trips += 1
            return method(*args, **kwargs)

        return counted


def _trips(store: CountingStore, action) -> tuple[int, object]:
    before = store.trips
    result = action()
    return store.trips - before, result


def test_get_many_is_one_trip_per_chunk():
    store = CountingStore()
    keys = [f"k/{i}" for i in range(WORLD)]
    for i, key in enumerate(keys):
        store.inner.set(key, str(i))
    trips, values = _trips(store, lambda: storeio.get_many(store, keys))
    assert [int(v) for v in values] == list(range(WORLD))
    assert trips == math.ceil(WORLD / storeio.CHUNK) == 16


def test_present_bisects_only_chunks_with_gaps():
    store = CountingStore()
    keys = [f"k/{i}" for i in range(WORLD)]
    missing = {17, 4000, 8191}
    for i, key in enumerate(keys):
        if i not in missing:
            store.inner.set(key, "x")
    trips, found = _trips(store, lambda: storeio.present(store, keys))
    assert [i for i, ok in enumerate(found) if not ok] == sorted(missing)
    chunks = WORLD // storeio.CHUNK
    # each missing key costs at most 2 checks per level of a chunk's bisection
    assert trips <= chunks + len(missing) * 2 * math.ceil(math.log2(storeio.CHUNK))
    assert trips < WORLD / 20


def test_read_counters_reads_a_never_written_counter_as_zero():
    store = CountingStore()
    store.inner.add("beat/0", 3)
    store.inner.add("beat/2", 1)
    assert storeio.read_counters(store, ["beat/0", "beat/1", "beat/2"]) == [3, 0, 1]


def _info(rank: int) -> RankInfo:
    return RankInfo(
        rank=rank,
        local_rank=rank % 8,
        node_rank=rank // 8,
        hostname=f"node{rank // 8:04d}",
        pid=1000 + rank,
        device="cpu",
    )


def _publish_infos(store: CountingStore, ranks: range | list[int]) -> None:
    for rank in ranks:
        store.inner.set(f"info/{rank}", json.dumps(asdict(_info(rank))))


def test_read_rank_infos_batches():
    store = CountingStore()
    _publish_infos(store, range(WORLD))
    trips, infos = _trips(store, lambda: read_rank_infos(store, WORLD, 5.0))
    assert [i.rank for i in infos] == list(range(WORLD))
    assert trips <= 1 + WORLD // storeio.CHUNK  # one wait, then a multi_get per chunk


def test_partial_report_reads_the_ranks_that_joined_in_few_trips():
    store = CountingStore()
    lost = {5, 6000}
    _publish_infos(store, [r for r in range(WORLD) if r not in lost])
    trips, infos = _trips(store, lambda: _available_rank_infos(store, WORLD))
    assert {i.rank for i in infos} == set(range(WORLD)) - lost
    assert trips < 100  # one per rank would be 8,192


def test_supervisor_observes_every_rank_in_few_trips(monkeypatch):
    """The writer of a partial report reads beats, steps and statuses of 8,192 ranks."""
    import nccldoctor.supervisor as supervisor_module

    monkeypatch.setattr(supervisor_module, "LIVENESS_WINDOW_S", 0.0)
    store = CountingStore()
    for rank in range(WORLD):
        if rank != 4242:  # never joined
            store.inner.add(f"beat/{rank}", 2)
            store.inner.add(f"step/{rank}", 3)
    store.inner.set("status/7", json.dumps({"kind": "exception", "message": "x", "step": 1, "label": "y"}))
    store.inner.append(supervisor_module.STATUS_INDEX, "7,")
    sup = Supervisor.__new__(Supervisor)
    sup.store, sup.world_size = store, WORLD
    trips, states = _trips(store, sup._observe)
    assert [s.rank for s in states if not s.joined] == [4242]
    assert states[7].status["kind"] == "exception"
    assert states[100].step == 2
    assert trips < 200  # three per rank would be 24,576


@pytest.mark.parametrize("chunk", [1, 7, 512])
def test_get_present_keeps_order(chunk):
    store = CountingStore()
    store.inner.set("a", "1")
    store.inner.set("c", "3")
    assert storeio.get_present(store, ["a", "b", "c", "d"], chunk) == [b"1", None, b"3", None]
