"""Reading many keys from the rendezvous store in few round trips.

Rank 0 (or the writer of a partial report) reads one key per rank or per node: every rank's
RankInfo, heartbeats, steps and statuses, every node's facts. One `store.get` per key is one
network round trip to the store each: 8,192 of them at 1,024 nodes x 8 ranks, seconds spent
before a report that should take milliseconds. `multi_get` fetches a list of keys in one
request; chunks of `CHUNK` keys keep each request and reply bounded (a RankInfo is ~300 bytes,
so a chunk is well under a megabyte).

`multi_get` blocks on a missing key, and `check` only says whether *all* keys exist, so keys
that may be missing (ranks that never joined) are found by checking a whole chunk at once and
splitting only a chunk that has a gap: one round trip per chunk when everyone is there, and
about log2(chunk) more per missing key.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.distributed as dist

CHUNK = 512  # keys per multi_get / check request


def get_many(store: dist.Store, keys: Sequence[str], chunk: int = CHUNK) -> list[bytes]:
    """The values of `keys` (all must exist), `chunk` keys per round trip."""
    values: list[bytes] = []
    for start in range(0, len(keys), chunk):
        values.extend(store.multi_get(list(keys[start : start + chunk])))
    return values


def present(store: dist.Store, keys: Sequence[str], chunk: int = CHUNK) -> list[bool]:
    """Which of `keys` exist, without blocking on the missing ones."""
    found = [False] * len(keys)
    for start in range(0, len(keys), chunk):
        _mark_present(store, keys, start, min(start + chunk, len(keys)), found)
    return found


def _mark_present(store: dist.Store, keys: Sequence[str], low: int, high: int, found: list[bool]) -> None:
    """Bisect [low, high): a range whose keys all exist costs one check."""
    if low >= high:
        return
    if store.check(list(keys[low:high])):
        found[low:high] = [True] * (high - low)
        return
    if high - low == 1:
        return
    middle = (low + high) // 2
    _mark_present(store, keys, low, middle, found)
    _mark_present(store, keys, middle, high, found)


def get_present(store: dist.Store, keys: Sequence[str], chunk: int = CHUNK) -> list[bytes | None]:
    """The value of each key that exists, None for each that does not."""
    exists = present(store, keys, chunk)
    fetched = iter(get_many(store, [k for k, ok in zip(keys, exists, strict=True) if ok], chunk))
    return [next(fetched) if ok else None for ok in exists]


def read_counters(store: dist.Store, keys: Sequence[str], chunk: int = CHUNK) -> list[int]:
    """Counters written with `store.add` (stored as decimal text); one never written reads 0."""
    return [int(raw) if raw is not None else 0 for raw in get_present(store, keys, chunk)]
