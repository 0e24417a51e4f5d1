"""Statistics over ranks: per-rank summaries and robust straggler scores.

Scores follow the convention of NVIDIA's straggler detector (nvidia-resiliency-ext): a rank's
score is the reference time divided by its own time, so 1.0 is typical and 0.5 means twice as
slow. The reference is the median rank (the lower one of an even count), and outliers are
judged by the median absolute deviation (MAD), so one slow rank moves neither the reference
nor the spread; a mean and a
standard deviation would be dragged towards the very rank being looked for.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# MAD of a normal distribution is 0.6745 sigma: this makes the modified z-score comparable to a z-score.
MAD_TO_SIGMA = 0.6745


def across_ranks(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, min, max of one value measured on every rank, and which rank had the max."""
    slowest = max(range(len(values)), key=values.__getitem__)
    return {
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": values[slowest],
        "argmax": slowest,
    }


def mad(values: Sequence[float]) -> float:
    """Median absolute deviation from the median."""
    middle = statistics.median(values)
    return statistics.median(abs(v - middle) for v in values)


@dataclass(frozen=True)
class RankScore:
    rank: int
    seconds: float
    score: float  # median time / this rank's time: < 1 is slower than the median rank
    robust_z: float  # (time - median) / (MAD / 0.6745): how unusual, in sigma-like units


def straggler_scores(seconds: Sequence[float]) -> list[RankScore]:
    """One score per rank (index = rank) from each rank's time for the same work."""
    # The lower median: a time some rank really took. With two ranks the median would be their
    # midpoint, and a rank k times slower could never score below 0.5; this way it scores 1/k.
    reference = statistics.median_low(seconds)
    spread = mad(seconds) / MAD_TO_SIGMA
    return [
        RankScore(
            rank=rank,
            seconds=t,
            score=reference / t if t > 0 else float("inf"),
            robust_z=(t - reference) / spread if spread > 0 else (0.0 if t == reference else float("inf")),
        )
        for rank, t in enumerate(seconds)
    ]
