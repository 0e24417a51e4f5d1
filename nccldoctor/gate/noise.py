"""How much one run's numbers move on their own: the yardstick a baseline comparison uses.

A change between two runs means something only when it is larger than what each run already
shows between measurements that should agree. Every spread here is relative (0.08: 8%) and
comes from the run itself, never a fixed percentage:

- a row's ranks: the fastest and the slowest rank's time per call (min_time_us, max_time_us);
- a row's two modes: out-of-place and in-place move the same bytes, so their gap is noise;
- the settings sweep's rounds of the defaults (the same row measured again, minutes apart);
- the curve: more bytes never take less time, and in the bandwidth regime busbw never falls
  as the size grows, so every size where the curve goes backwards shows the run's noise (on a
  shared 2-core machine the same run measured all_reduce at 0.83 GB/s at 2M and 0.58 at 8M,
  while its ranks agreed within 0.3%: the ranks' spread alone is far too optimistic);
- links and ranks of one kind: in a healthy job they measure alike, so their scatter is the
  noise of any one of them.

Each run's value is uncertain by its own noise, so their ratio is uncertain by both:
`combined` multiplies the two (1.3x and 1.5x: 1.95x). A run on a noisy day does not turn
into a regression against a quiet baseline, and two quiet runs (ranks within 2%, curves that
never go backwards: 1.04x together) still show a drop of a tenth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from nccldoctor.rows import Row, rows_frame

KEY = ["probe", "size_bytes", "inplace"]  # one main-run row
DEFAULTS = "defaults"  # the settings sweep's label for the run's own environment


def measured(rows: list[Row]) -> pd.DataFrame:
    """The main run's rows indexed by KEY: busbw_gbps, time_us and `noise`, the largest of the
    row's ranks' spread, its gap to the other mode, and its settings-sweep rounds' spread."""
    frame = rows_frame(rows)
    main = frame[frame["sweep"].isna()].copy()
    ranks = (main["max_time_us"] - main["min_time_us"]) / main["time_us"]
    modes = main.groupby(["probe", "size_bytes"])["time_us"].transform(ratio_spread)
    main["noise"] = pd.concat([ranks, modes], axis=1).max(axis=1)
    main = main.set_index(KEY)[["busbw_gbps", "time_us", "noise"]]
    rounds = _round_spreads(frame).reindex(main.index).fillna(0.0)
    main["noise"] = main["noise"].combine(rounds, max)
    return main


def _round_spreads(frame: pd.DataFrame) -> pd.Series:
    """The settings sweep's defaults, measured once per round: max/min - 1 of each row's time."""
    defaults = frame[(frame["sweep"] == "settings") & (frame["setting"] == DEFAULTS)]
    defaults = defaults[defaults["repeat"].fillna(-1) >= 0]  # not the NCCL log round
    if defaults.empty:
        return pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=KEY))
    return defaults.groupby(KEY)["time_us"].agg(ratio_spread)


def ratio_spread(values: Iterable[float]) -> float:
    """max / min - 1 of values that should agree (0 for fewer than two, or a zero)."""
    values = [float(v) for v in values]
    low = min(values, default=0.0)
    return max(values) / low - 1 if low > 0 else 0.0


def backwards(values: Sequence[float]) -> float:
    """How far a curve that should never fall does fall: the largest earlier / later - 1 over
    every pair in order (0 for a curve that only rises)."""
    worst, peak = 0.0, 0.0
    for value in values:
        if value > 0 and peak > 0:
            worst = max(worst, peak / value - 1)
        peak = max(peak, value)
    return worst


def curve_noise(rows: pd.DataFrame, bandwidth_keys: pd.Index | None = None) -> float:
    """How far one probe's curve goes backwards in a run (rows indexed by KEY): in each mode the
    time must rise with the size over every size, and the busbw must not fall over the
    bandwidth sizes (`bandwidth_keys`)."""
    worst = 0.0
    for _, mode in rows.groupby(level="inplace"):
        mode = mode.sort_index(level="size_bytes")
        worst = max(worst, backwards(list(mode["time_us"])))
        if bandwidth_keys is not None:
            worst = max(worst, backwards(list(mode[mode.index.isin(bandwidth_keys)]["busbw_gbps"])))
    return worst


def flat_noise(rows: pd.DataFrame) -> float:
    """Latency-bound sizes take the same time whatever their size: per mode, max / min - 1."""
    return max((ratio_spread(mode["time_us"]) for _, mode in rows.groupby(level="inplace")), default=0.0)


def timing_noise(rows: pd.DataFrame) -> float:
    """The run's timing noise: the farthest any probe's curve went backwards. Links, scores and
    DDP are timed on the same machine in the same minutes, so they are no quieter than that."""
    return max((curve_noise(probe) for _, probe in rows.groupby(level="probe")), default=0.0)


def combined(old: float, new: float) -> float:
    """The noise of a ratio of two values, each as noisy as its run: (1 + old)(1 + new) - 1."""
    return (1 + old) * (1 + new) - 1
