"""The bar: one value measured in a baseline and in a run (a Delta), and when its change counts.

A change counts only beyond the noise: how far the same value moves within one run
(nccldoctor.gate.noise), the larger of the two runs', times --regression-noise. Both are
ratios: a noise of 0.45 means the run's own measurements of one thing differed by up to 1.45x,
so a value counts as worse when it is more than 1.45x slower than the baseline (busbw 1.45x
lower, a time 1.45x longer), and better when more than 1.45x faster. A worse judged value is a
warning, and a failure when it is also worse by more than --regression-fail percent (busbw
fell, or a time rose, by more than that share of the baseline's value).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

LOWER_IS_BETTER = frozenset({"time", "latency"})
UNITS = {
    "busbw": "GB/s",
    "time": "us",
    "latency": "us",
    "score": "",
    "link": "GB/s",
    "tokens_per_s": "tokens/s",
}


@dataclass(frozen=True, kw_only=True)
class Delta:
    """One thing measured in both runs. `change` is new / old - 1 of the value itself; `worse`
    is the share it got worse by (0.63: busbw fell by 63%, or a time rose by 63%; negative:
    better); `slowdown` how many times slower this run is (2.7: 2.7x; 0.5: twice as fast)."""

    metric: str  # busbw | time | latency | score | link | tokens_per_s
    subject: str  # what, in words: "all_reduce", "node 1 (host-b)", "node 0 -> node 1"
    old: float
    new: float
    unit: str
    change: float
    worse: float
    slowdown: float | None  # None: this run measured nothing (a zero)
    noise: float  # the ratio a change must exceed, minus 1, times the noise factor
    status: str  # same | better | worse (details) ; same | better | warn | fail (judged)
    judged: bool  # True: may be a regression; False: a detail (one size of one probe)
    probe: str | None = None
    size_bytes: int | None = None  # a judged probe: the baseline's best size (peak or lowest time)
    inplace: bool | None = None
    sizes: list[int] = field(default_factory=list)  # a judged probe: the sizes it was judged on
    nodes: list[int] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    note: str = ""  # said after the finding's message (e.g. whom a slower link points at)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Bar:
    """When a change counts (the flags --regression-fail and --regression-noise)."""

    fail_pct: float = 20.0  # worse by more than this percentage (and the noise): a failure
    noise_factor: float = 1.0  # the runs' own spread times this: what a change must exceed

    def judge(
        self,
        metric: str,
        subject: str,
        old: float,
        new: float,
        *,
        noise: float,
        judged: bool = True,
        consistent: bool = True,
        **where: Any,
    ) -> Delta:
        """The delta of one value; `consistent` False (its sizes moved both ways): same."""
        noise = float(noise) * self.noise_factor
        slowdown = _slowdown(metric, old, new)
        return Delta(
            metric=metric,
            subject=subject,
            old=old,
            new=new,
            unit=UNITS[metric],
            change=new / old - 1 if old else 0.0,
            worse=_worse(metric, old, new),
            slowdown=None if math.isinf(slowdown) else slowdown,
            noise=noise,
            status=self._status(metric, old, new, slowdown, noise, judged=judged, consistent=consistent),
            judged=judged,
            **where,
        )

    def _status(
        self,
        metric: str,
        old: float,
        new: float,
        slowdown: float,
        noise: float,
        *,
        judged: bool,
        consistent: bool,
    ) -> str:
        if not consistent or 1 / (1 + noise) <= slowdown <= 1 + noise:
            return "same"
        if slowdown < 1:
            return "better"
        if not judged:
            return "worse"
        return "fail" if _worse(metric, old, new) * 100 > self.fail_pct else "warn"


def _slowdown(metric: str, old: float, new: float) -> float:
    """How many times slower `new` is than `old` (inf: a value that fell to zero)."""
    slow, fast = (new, old) if metric in LOWER_IS_BETTER else (old, new)
    if fast <= 0:
        return 1.0 if slow <= 0 else math.inf
    return slow / fast


def _worse(metric: str, old: float, new: float) -> float:
    if not old:
        return 0.0
    return new / old - 1 if metric in LOWER_IS_BETTER else 1 - new / old
