"""Statistics over ranks."""

from __future__ import annotations

from collections.abc import Sequence


def across_ranks(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, min, max of one value measured on every rank, and which rank had the max."""
    slowest = max(range(len(values)), key=values.__getitem__)
    return {
        "mean": sum(values) / len(values),
        "min": min(values),
        "max": values[slowest],
        "argmax": slowest,
    }
