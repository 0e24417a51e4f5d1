"""Settings sweep: the run's probes under each `--sweep` setting, in fresh processes, judged fairly.

NCCL reads most variables once per process, so every setting runs in new worker processes
(nccldoctor.variants), all ranks starting it together. The current environment ("defaults") is
always one of the settings. Rounds are interleaved (A B C A B C ...), so drift on the hosts
(thermal, other jobs) lands on every setting alike, and each round compares settings measured
minutes apart at most.

Each round runs the settings in a rotated order (round r starts at the r-th setting), so no
setting always runs first and drift that favours a slot lands on every setting alike.

A setting is recommended only when it beats the noise: measured against the defaults round by
round (the geometric mean, over the sizes in scope, of the defaults' time over the setting's),
its median gain is above 5% and above the noise, and it was ahead in every round. The noise is
the larger of the defaults' own spread between rounds and, when the sweep holds a setting equal
to the defaults (an A/A check, such as the OMP_NUM_THREADS=1 torchrun already sets), the largest
gap that setting showed in any round. "Keep the defaults" is said only when the sweep could have
seen a 5% gain (noise at most 5%) and did not, or when every setting was slower by more than the
noise; otherwise the verdict is "inconclusive", with the noise measured and what to do about it.
A setting that fails is recorded with its error and not run again.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from nccldoctor.bandwidth import LATENCY_BOUND_BELOW
from nccldoctor.findings import Finding, make_finding
from nccldoctor.nccl_tuning import ignored_settings
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.probes.collectives import WORKER_PHASES
from nccldoctor.probes.gpu_device import sweep_blocked
from nccldoctor.rows import Row, rows_frame
from nccldoctor.sweepspec import combinations, export_lines
from nccldoctor.units import format_size
from nccldoctor.variants import Variant, VariantOutcome, VariantRunner, setting_label, variant_rows

if TYPE_CHECKING:  # frames come from rows_frame; pandas loads only when a sweep is judged
    import pandas as pd

SWEEP = "settings"
DEFAULTS = "defaults"
MIN_GAIN = 0.05  # a recommendation must be worth a relaunch, whatever the noise
BANDS = (  # (name, smallest size, first size past it): NCCL's LL / LL128 / Simple territory, roughly
    ("small", 0, LATENCY_BOUND_BELOW),
    ("medium", LATENCY_BOUND_BELOW, 8 * 1024**2),
    ("large", 8 * 1024**2, math.inf),
)
KEYS = ["setting", "probe", "size_bytes"]


def setting_variants(spec: list[tuple[str, list[str]]]) -> list[Variant]:
    """The defaults first, then the cartesian product; each child reports the swept variables."""
    watch = tuple(name for name, _ in spec)
    # Named as their rows are labelled (Variant.setting), so the two always match.
    return [Variant(SWEEP, DEFAULTS, {}, watch)] + [
        Variant(SWEEP, setting_label(env), env, watch) for env in combinations(spec)
    ]


LOG_ROUND = -1  # NCCL only: a first round that logs what NCCL chose and is not scored


def interleaved(variants: list[Variant], repeats: int, log_round: bool = False) -> list[tuple[int, Variant]]:
    """(round, variant) in the order to run: every setting once per round. With `log_round`,
    a first round (LOG_ROUND) logs NCCL's choices: a log line per collective slows small
    messages, so that round is kept out of the scores."""
    first = [LOG_ROUND] if log_round else []
    rounds = [*first, *range(repeats)]
    return [(repeat, variant) for repeat in rounds for variant in rotated(variants, repeat)]


def rotated(variants: list[Variant], repeat: int) -> list[Variant]:
    """Round `repeat`'s order: started at its own setting, so each setting runs first as often
    as any other (the log round, not scored, keeps the written order)."""
    shift = max(repeat, 0) % len(variants) if variants else 0
    return variants[shift:] + variants[:shift]


def backend_logs_tuning(backend: str, environ: Mapping[str, str]) -> bool:
    """An NCCL log round is worth its launch when the bench can read the log (see nccl_capture)."""
    return backend == "nccl" and not environ.get("NCCL_DEBUG", "").strip()


def round_name(repeat: int) -> str:
    return "the NCCL log round" if repeat == LOG_ROUND else f"round {repeat + 1}"


# -- the numbers -------------------------------------------------------------------------------


def measurements(rows: list[Row]) -> pd.DataFrame:
    """One row per (setting, probe, size, round): out-of-place where measured, else in-place."""
    frame = rows_frame(rows).sort_values("inplace", kind="stable")
    frame = frame.drop_duplicates([*KEYS, "repeat"], keep="first")
    return frame[[*KEYS, "repeat", "time_us", "busbw_gbps"]].reset_index(drop=True)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per setting, probe and size: the median busbw over the rounds, and its spread."""
    grouped = frame.groupby(KEYS, sort=False)
    table = grouped["busbw_gbps"].agg(busbw_median="median", busbw_min="min", busbw_max="max")
    table["time_us_median"] = grouped["time_us"].median()
    table["repeats"] = grouped["repeat"].nunique()
    return table.reset_index()


@dataclass
class Comparison:
    setting: str
    scope: str  # "all sizes" or a band's name
    cells: int  # (probe, size) pairs compared
    rounds: int  # rounds in which both were measured
    gain: float  # median over rounds of the setting's speed-up, minus 1 (0.12: 12% faster)
    worst_round: float  # the smallest of those speed-ups, minus 1
    best_round: float  # the largest, minus 1
    spread: float  # the defaults' own spread between rounds over the same cells (0.03: 3%)
    noise: float = 0.0  # what a gain must beat: the spread, or an A/A setting's gap if larger
    same_as_defaults: bool = False  # an A/A check: its gain is pure noise

    @property
    def beats_noise(self) -> bool:
        return (
            not self.same_as_defaults
            and self.rounds >= 2
            and self.gain > max(MIN_GAIN, self.noise)
            and self.worst_round > 0
        )

    @property
    def clearly_slower(self) -> bool:
        """Behind the defaults in every round, by more than the noise at the median."""
        return self.rounds >= 2 and self.gain < -max(MIN_GAIN, self.noise) and self.best_round < 0

    @property
    def could_see_min_gain(self) -> bool:
        """Quiet enough that a MIN_GAIN speed-up would have stood out."""
        return self.rounds >= 2 and self.noise <= MIN_GAIN

    @property
    def gap(self) -> float:
        """The largest distance from the defaults in any round (for an A/A check: the noise)."""
        return max(abs(self.worst_round), abs(self.best_round))


def compare(frame: pd.DataFrame, setting: str, scope: str, low: float, high: float) -> Comparison | None:
    """The setting against the defaults, round by round, over the sizes in [low, high)."""
    in_scope = frame[(frame["size_bytes"] >= low) & (frame["size_bytes"] < high)]
    times = in_scope.pivot_table(index=["probe", "size_bytes", "repeat"], columns="setting", values="time_us")
    if setting not in times or DEFAULTS not in times:
        return None
    pair = times[[DEFAULTS, setting]].dropna()
    if pair.empty:
        return None
    speedups = (pair[DEFAULTS] / pair[setting]).groupby(level="repeat").apply(_geomean)
    defaults = pair[DEFAULTS].groupby(level=["probe", "size_bytes"])
    spread = _geomean(defaults.max() / defaults.min()) - 1
    return Comparison(
        setting=setting,
        scope=scope,
        cells=pair.droplevel("repeat").index.nunique(),
        rounds=len(speedups),
        gain=statistics.median(speedups) - 1,
        worst_round=min(speedups) - 1,
        best_round=max(speedups) - 1,
        spread=spread,
        noise=spread,
    )


def _geomean(values: pd.Series) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def scopes(frame: pd.DataFrame) -> list[tuple[str, float, float]]:
    """'all sizes' and each band that holds a measured size."""
    sizes = set(frame["size_bytes"])
    bands = [(name, low, high) for name, low, high in BANDS if any(low <= s < high for s in sizes)]
    return [("all sizes", 0, math.inf), *bands]


def comparisons(
    frame: pd.DataFrame, settings: list[str], same_as_defaults: frozenset[str] = frozenset()
) -> dict[str, list[Comparison]]:
    """scope -> every setting's comparison with the defaults, best first. An A/A setting's
    largest gap in a round raises the noise every setting of that scope must beat."""
    result = {}
    for scope, low, high in scopes(frame):
        found = [c for s in settings if s != DEFAULTS if (c := compare(frame, s, scope, low, high))]
        floor = max((c.gap for c in found if c.setting in same_as_defaults), default=0.0)
        for c in found:
            c.same_as_defaults = c.setting in same_as_defaults
            c.noise = max(c.spread, floor)
        result[scope] = sorted(found, key=lambda c: c.gain, reverse=True)
    return result


# -- the verdicts ------------------------------------------------------------------------------


@dataclass
class SettingRecord:
    """How one setting fared over the rounds."""

    name: str
    env: dict[str, str]
    runs: list[dict[str, Any]]  # per round it ran: repeat, seconds, pid, env seen, phase times
    error: str | None = None
    nccl: dict[str, Any] | None = None  # rank 0's first-round NCCL log, on NCCL
    ignored: list[str] | None = None  # NCCL_* parts NCCL did not apply
    same_as_defaults: bool = False  # the launch environment already has these values


def records(variants: list[Variant], runs: list[tuple[int, VariantOutcome]]) -> list[SettingRecord]:
    by_name = {v.name: SettingRecord(v.name, dict(v.env), []) for v in variants}
    for repeat, outcome in runs:
        record = by_name[outcome.variant.name]
        if outcome.skipped:
            continue
        if not outcome.ok and record.error is None:
            record.error = f"{round_name(repeat)}: {outcome.why}"
        record.runs.append(
            {"repeat": repeat, "seconds": round(outcome.seconds, 3), "ok": outcome.ok, "pids": outcome.pids}
            | {"child": outcome.child}
        )
        if outcome.nccl_log and record.nccl is None:
            record.nccl = outcome.nccl_log
            record.ignored = ignored_settings(record.env, outcome.nccl_log)
    _mark_same_as_defaults(list(by_name.values()))
    return list(by_name.values())


def _mark_same_as_defaults(settings: list[SettingRecord]) -> None:
    """A setting whose values the launch environment already has (torchrun exports
    OMP_NUM_THREADS=1, say) measures the defaults again: an A/A check, worth saying so."""
    seen = next((r["child"].get("env") for r in settings[0].runs if r["child"]), None) if settings else None
    if seen is None:
        return
    for setting in settings[1:]:
        setting.same_as_defaults = all(seen.get(name) == value for name, value in setting.env.items())


def recommendations(found: dict[str, list[Comparison]]) -> dict[str, Comparison]:
    """scope -> the setting to recommend there. Overall: the best that beats the noise and costs
    no band more than MIN_GAIN. Per band: the band's best, when it beats the noise and differs
    from the overall one."""
    chosen = {}
    overall = next((c for c in found.get("all sizes", []) if c.beats_noise and _no_band_lost(c, found)), None)
    if overall:
        chosen["all sizes"] = overall
    for scope, ranked in found.items():
        best = ranked[0] if ranked else None
        if scope == "all sizes" or best is None or not best.beats_noise:
            continue
        if not overall or best.setting != overall.setting:
            chosen[scope] = best
    return chosen


RECOMMENDED = "recommended"
KEEP_DEFAULTS = "keep the defaults"
INCONCLUSIVE = "inconclusive"
BAND_LOST = "slower in some band: see the bands"


def scope_verdict(ranked: list[Comparison], chosen: Comparison | None) -> dict[str, str]:
    """One scope's fastest setting and what to make of it. "Keep the defaults" needs evidence:
    a sweep quiet enough to have seen a MIN_GAIN speed-up, or every setting clearly slower."""
    if chosen is not None:
        return {"best": chosen.setting, "verdict": RECOMMENDED}
    contenders = [c for c in ranked if not c.same_as_defaults]
    ahead = next((c for c in contenders if c.gain > 0), None)
    if ahead is not None and ahead.beats_noise:  # overall only: it costs some band too much
        return {"best": ahead.setting, "verdict": BAND_LOST}
    if contenders and all(c.clearly_slower for c in contenders):
        return {"best": DEFAULTS, "verdict": KEEP_DEFAULTS}
    if ranked and all(c.could_see_min_gain for c in ranked):
        return {"best": DEFAULTS, "verdict": KEEP_DEFAULTS}
    return {"best": ahead.setting if ahead else DEFAULTS, "verdict": INCONCLUSIVE}


def verdicts(found: dict[str, list[Comparison]], chosen: dict[str, Comparison]) -> dict[str, dict[str, str]]:
    """Per scope: the fastest setting (the defaults when nothing was faster) and what to make of it."""
    return {scope: scope_verdict(ranked, chosen.get(scope)) for scope, ranked in found.items()}


def judge(
    found: dict[str, list[Comparison]],
    chosen: dict[str, Comparison],
    settings: list[SettingRecord],
    nodes: list[int],
) -> tuple[list[Finding], str]:
    """Findings (recommendations, failed and ignored settings, inconclusive) and the one-line advice."""
    env_of = {s.name: s.env for s in settings}
    findings = [_failed(s, nodes) for s in settings if s.error]
    findings += [_ignored(s, nodes) for s in settings if s.ignored]
    findings += [_recommend(c, env_of[c.setting], found, nodes) for c in chosen.values()]
    overall = chosen.get("all sizes")
    ranked = found.get("all sizes", [])
    if not ranked:
        return findings, "nothing to compare: no setting was measured next to the defaults"
    verdict = scope_verdict(ranked, overall)["verdict"]
    if overall:
        return findings, f"use {overall.setting}: {export_lines(env_of[overall.setting])}"
    banded = "; a setting helps only one size band (see the findings)" if chosen else ""
    if verdict == INCONCLUSIVE:
        findings.append(_inconclusive(ranked, nodes))
        return findings, f"inconclusive overall: {_noise_text(ranked)}{banded}"
    return findings, f"keep the defaults overall{banded}" if chosen else _keep_text(ranked, verdict)


def _keep_text(ranked: list[Comparison], verdict: str) -> str:
    if verdict == BAND_LOST:
        return "keep the defaults: the fastest setting overall costs some size band (see the bands)"
    contenders = [c for c in ranked if not c.same_as_defaults]
    if contenders and all(c.clearly_slower for c in contenders):
        return "keep the defaults: every setting was slower than them by more than the noise"
    return (
        f"keep the defaults: the sweep could see a {MIN_GAIN:.0%} gain (noise {_noise(ranked):.1%} "
        "between rounds) and no setting reached it"
    )


def _noise(ranked: list[Comparison]) -> float:
    return max((c.noise for c in ranked), default=0.0)


def _noise_text(ranked: list[Comparison]) -> str:
    """The measured noise, where it came from, and that it hides any effect a sweep could call."""
    rounds = min((c.rounds for c in ranked), default=0)
    if rounds < 2:
        return f"only {rounds} round was measured, and one round cannot tell a steady difference from noise"
    text = f"the defaults varied {max(c.spread for c in ranked):.0%} between rounds"
    same = [c for c in ranked if c.same_as_defaults]
    if same:
        worst = max(same, key=lambda c: c.gap)
        text += f" and {worst.setting}, the defaults' own values, differed from them by up to {worst.gap:.0%}"
    return (
        f"{text}: more than the {MIN_GAIN:.0%} a recommendation needs, "
        "so no setting was called faster or slower"
    )


INCONCLUSIVE_FIX = (
    "measure again with more rounds (--sweep-repeats), more iterations per size (-n), fewer ranks "
    "per CPU core or GPU, on a quieter machine (no other jobs)"
)


def _inconclusive(ranked: list[Comparison], nodes: list[int]) -> Finding:
    return make_finding(
        "sweep_inconclusive",
        f"settings sweep inconclusive: {_noise_text(ranked)}",
        nodes=nodes,
        evidence={
            "noise": round(_noise(ranked), 4),
            "defaults_spread": round(max(c.spread for c in ranked), 4),
            "gains": {c.setting: round(c.gain, 4) for c in ranked},
            "same_as_defaults": [c.setting for c in ranked if c.same_as_defaults],
        },
        fix=INCONCLUSIVE_FIX,
    )


def _no_band_lost(candidate: Comparison, found: dict[str, list[Comparison]]) -> bool:
    """An overall recommendation must not cost any size band more than MIN_GAIN."""
    return all(
        c.gain > -MIN_GAIN for ranked in found.values() for c in ranked if c.setting == candidate.setting
    )


def _recommend(
    best: Comparison, env: dict[str, str], found: dict[str, list[Comparison]], nodes: list[int]
) -> Finding:
    band = next((b for b in BANDS if b[0] == best.scope), None)
    where = "across all measured sizes" if band is None else f"for {best.scope} messages ({_band_text(band)})"
    elsewhere = {
        scope: round(c.gain, 4)
        for scope, ranked in found.items()
        for c in ranked
        if c.setting == best.setting
    }
    return make_finding(
        "tuning_recommendation",
        f"{best.setting}: {best.gain:+.0%} bandwidth over the defaults {where} (ahead in all "
        f"{best.rounds} interleaved rounds, by {best.worst_round:+.0%} at worst; the defaults "
        f"varied {best.noise:.0%} between rounds)"
        + ("" if band is None else _elsewhere_text(best, elsewhere)),
        nodes=nodes,
        evidence={**asdict(best), "env": env, "gain_by_scope": elsewhere},
        fix=f"{export_lines(env)}  (on every node, before torchrun)",
    )


def _elsewhere_text(best: Comparison, gains: dict[str, float]) -> str:
    others = {scope: gain for scope, gain in gains.items() if scope not in (best.scope, "all sizes")}
    if not others:
        return ""
    listed = ", ".join(f"{scope} {gain:+.0%}" for scope, gain in others.items())
    return f"; the variable applies to every size, and elsewhere it measured: {listed}"


def _band_text(band: tuple[str, float, float]) -> str:
    _, low, high = band
    if low == 0:
        return f"below {format_size(int(high))}"
    if high == math.inf:
        return f"{format_size(int(low))} and up"
    return f"{format_size(int(low))} to {format_size(int(high))}"


def _failed(setting: SettingRecord, nodes: list[int]) -> Finding:
    return make_finding(
        "sweep_variant_failed",
        f"settings sweep: {setting.name} failed ({setting.error}); the other settings were measured",
        nodes=nodes,
        evidence={"setting": setting.name, "env": setting.env, "error": setting.error},
        fix=f"do not use {setting.name} on this cluster, or fix what the error names",
    )


def _ignored(setting: SettingRecord, nodes: list[int]) -> Finding:
    return make_finding(
        "sweep_setting_ignored",
        f"settings sweep: NCCL did not apply {setting.name}: {'; '.join(setting.ignored or [])}",
        nodes=nodes,
        evidence={"setting": setting.name, "env": setting.env, "reasons": setting.ignored},
        fix="check the variable's name and value against your NCCL version's documentation; "
        "its numbers in the sweep measure the defaults",
    )


def report_settings(
    variants: list[Variant],
    plan: list[tuple[int, Variant]],
    runs: list[tuple[int, VariantOutcome]],
    nodes: list[int],
) -> tuple[list[Finding], dict[str, Any], list[Row]]:
    """Rank 0: findings, the report's `settings_sweep` section, and the rows for `results`."""
    rows = [row for repeat, o in runs if o.ok and not o.skipped for row in variant_rows(o, repeat=repeat)]
    frame = measurements([row for row in rows if row.repeat != LOG_ROUND])
    settings = records(variants, runs)
    same = frozenset(s.name for s in settings if s.same_as_defaults)
    found = comparisons(frame, [v.name for v in variants], same) if not frame.empty else {}
    chosen = recommendations(found)
    findings, advice = judge(found, chosen, settings, nodes)
    left = [f"{v.name} ({round_name(r)})" for r, v in plan[len(runs) :]]
    if left:
        findings.append(
            make_finding(
                "probe_skipped",
                f"settings sweep: no time left for {len(left)} run(s) before the deadline: {', '.join(left)}",
                evidence={"not_measured": left},
                fix="raise --timeout, or sweep fewer values, sizes or probes",
            )
        )
    section = {
        "variables": [{"name": name, "values": values} for name, values in _spec_of(variants)],
        "repeats": max((r for r, _ in plan), default=-1) + 1,
        "order": _round_orders(plan),
        "settings": [asdict(s) for s in settings],
        "table": summary(frame).to_dict("records") if not frame.empty else [],
        "verdicts": verdicts(found, chosen),
        "comparisons": {scope: [asdict(c) for c in ranked] for scope, ranked in found.items()},
        "advice": advice,
    }
    return findings, section, rows


def _round_orders(plan: list[tuple[int, Variant]]) -> dict[str, list[str]]:
    """The order settings ran in, per round (rotated: see `rotated`)."""
    orders: dict[str, list[str]] = {}
    for repeat, variant in plan:
        orders.setdefault(round_name(repeat), []).append(variant.name)
    return orders


def _spec_of(variants: list[Variant]) -> list[tuple[str, list[str]]]:
    names = variants[0].watch if variants else ()
    return [(n, list(dict.fromkeys(v.env[n] for v in variants if n in v.env))) for n in names]


def phases(config) -> list[Phase]:
    return [SettingsSweepPhase(config)] if config.sweep.settings else []


class SettingsSweepPhase(Phase):
    """Every --sweep setting in fresh processes, rounds interleaved; a failed one is not rerun."""

    name = "settings_sweep"

    def __init__(self, config) -> None:
        self.config = config
        self.variants = setting_variants(config.sweep.settings)

    def runs(self, ctx: PhaseContext) -> list[tuple[int, Variant]]:
        log_round = backend_logs_tuning(ctx.job.backend, os.environ)
        return interleaved(self.variants, self.config.sweep.repeats, log_round=log_round)

    def planned_steps(self, ctx: PhaseContext) -> int:
        return len(self.runs(ctx))

    def run(self, ctx: PhaseContext) -> PhaseResult:
        plan = self.runs(ctx)
        blocked = sweep_blocked(ctx, self.name)  # one finding, not every setting failing
        if blocked is not None:
            return PhaseResult(findings=[blocked] if ctx.job.rank == 0 else [])
        runner = VariantRunner.for_phase(ctx, WORKER_PHASES)
        # A setting may be slower than the defaults: give it twice what the main probes took.
        probe_seconds = sum(ctx.seconds.get(name, 0.0) for name in self.config.collectives.probes)
        runs: list[tuple[int, VariantOutcome]] = []
        failed: set[str] = set()
        for index, (repeat, variant) in enumerate(plan):
            ctx.step(f"settings sweep: {variant.name} ({round_name(repeat)})")
            outcome = runner.run(
                index,
                variant,
                self.config.collectives,
                runner.budget(2 * probe_seconds),
                skip=variant.name in failed,
                log_nccl=repeat == LOG_ROUND,
            )
            if outcome is None:
                break
            runs.append((repeat, outcome))
            if not outcome.ok:
                failed.add(variant.name)
        if ctx.job.rank != 0:
            return PhaseResult()
        nodes = sorted({info.node_rank for info in ctx.job.ranks})
        findings, section, rows = report_settings(self.variants, plan, runs, nodes)
        section["bench_pids"] = {info.rank: info.pid for info in ctx.job.ranks}  # the children differ
        return PhaseResult(rows=rows, findings=findings, sections={"settings_sweep": section})
