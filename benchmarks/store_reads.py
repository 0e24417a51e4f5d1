"""Rank 0 reading one key per rank from the rendezvous store: one get per key against storeio.

    python benchmarks/store_reads.py [--ranks 8192] [--value-bytes 300]

A TCPStore on loopback (the master's own store, as torchrun's c10d store is), `--ranks` keys
of `--value-bytes` each (a RankInfo is ~300 bytes). Times reading them all with one
`store.get` per key (what a loop over ranks costs), with `storeio.get_many` (multi_get per
512-key chunk), and finding which exist with `storeio.present` when 1% are missing. Loopback
has no network round trip; on a real network each trip adds one RTT, so the loop's cost
grows by N x RTT and the batched one's by N/512 x RTT.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

import torch.distributed as dist

from nccldoctor import storeio


def timed(action) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=8192)
    parser.add_argument("--value-bytes", type=int, default=300)
    args = parser.parse_args()
    store = dist.TCPStore("127.0.0.1", 0, 1, True, timeout=timedelta(seconds=30), wait_for_workers=False)
    keys = [f"info/{r}" for r in range(args.ranks)]
    value = "x" * args.value_bytes
    for key in keys:
        store.set(key, value)
    loop_s, _ = timed(lambda: [store.get(key) for key in keys])
    batched_s, values = timed(lambda: storeio.get_many(store, keys))
    assert len(values) == args.ranks
    sparse = [k for i, k in enumerate(keys) if i % 100 != 0]
    missing_store = dist.TCPStore("127.0.0.1", 0, 1, True, wait_for_workers=False)
    for key in sparse:
        missing_store.set(key, value)
    present_s, found = timed(lambda: storeio.present(missing_store, keys))
    assert sum(found) == len(sparse)
    print(f"{args.ranks} keys of {args.value_bytes} B on a loopback TCPStore:")
    print(f"  one get per key:              {loop_s:.3f} s ({args.ranks} round trips)")
    chunks = -(-args.ranks // storeio.CHUNK)
    print(f"  storeio.get_many:             {batched_s:.3f} s ({chunks} round trips)")
    print(f"  storeio.present, 1% missing:  {present_s:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
