"""Which lines of a chunk may hold an anchor: one vectorised pass instead of one pass per anchor.

Each anchor is stood for by its rarest byte pair (rarest in SAMPLE, a healthy log's lines). A
65,536-entry table says which byte pairs stand for some anchor; numpy looks every pair of the
chunk up at once, and only the lines with a hit are checked for the anchors themselves, in
Python. A common pair costs only speed (more lines checked), never a missed line: every anchor
holds its own pair.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from functools import cache

import numpy as np

# What most of a big log looks like: the pairs that are common here are poor stand-ins.
SAMPLE = (
    "[rank0]:2024-11-01 10:00:01,000 INFO train: epoch 0 step 10 loss 2.3141 lr 3.0e-04 tokens/s 51234\n"
    "[default3]:[2024-11-01 10:00:02] iteration 1200/50000 | consumed samples: 38400 | elapsed time "
    "per iteration (ms): 812.5 | learning rate: 2.9E-04 | global batch size: 32 | lm loss: 2.1E+00\n"
    "node1:2201:2290 [0] NCCL INFO Channel 00/02 :    0   1\n"
    "node1:2201:2290 [0] NCCL INFO Channel 00 : 0[0] -> 1[1] via P2P/IPC/read\n"
    "node1:2201:2290 [0] NCCL INFO Connected all rings, comm 0x55d0 rank 0 nranks 8 cudaDev 0 busId 1000\n"
    "INFO:root:Saving checkpoint to /checkpoints/step_1200 with the model, the optimizer and the "
    "scheduler states; validation accuracy 0.913, perplexity 8.21, throughput 1234.5 samples/sec\n"
    "Epoch 3: 45%|####      | 450/1000 [01:23<01:42, 5.38it/s, loss=0.412, v_num=12]\n"
)


def _pair(anchor: bytes, counts: Counter[bytes]) -> bytes:
    pairs = [anchor[i : i + 2] for i in range(len(anchor) - 1)]
    return min(pairs, key=lambda p: counts[p])


@cache
def _table(anchors: tuple[bytes, ...]) -> np.ndarray:
    sample = SAMPLE.encode()
    counts = Counter(sample[i : i + 2] for i in range(len(sample) - 1))
    table = np.zeros(1 << 16, dtype=bool)
    for anchor in anchors:
        if len(anchor) < 2:
            raise ValueError(f"an anchor needs two bytes at least: {anchor!r}")
        pair = _pair(anchor, counts)
        table[(pair[0] << 8) | pair[1]] = True
    return table


def candidate_spans(chunk: bytes, anchors: tuple[bytes, ...]) -> Iterator[tuple[int, int, int]]:
    """(index of the line in the chunk, start, end) of each line holding an anchor, in order."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    if data.size < 2:
        return
    codes = (data[:-1].astype(np.uint16) << 8) | data[1:]
    hits = np.flatnonzero(_table(anchors)[codes])
    if not hits.size:
        return
    newlines = np.flatnonzero(data == 10)
    lines = np.unique(np.searchsorted(newlines, hits))  # newlines before the hit = its line's index
    for index in lines.tolist():
        start = int(newlines[index - 1]) + 1 if index else 0
        end = int(newlines[index]) if index < newlines.size else len(chunk)
        line = chunk[start:end]
        if any(anchor in line for anchor in anchors):
            yield index, start, end
