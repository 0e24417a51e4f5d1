"""Settings sweep: the run's probes under each `--sweep` setting, in fresh processes, judged fairly.

NCCL reads most variables once per process, so every setting runs in new worker processes
(nccldoctor.variants), all ranks starting it together. The current environment ("defaults") is
always one of the settings. Rounds are interleaved (A B C A B C ...), so drift on the hosts
(thermal, other jobs) lands on every setting alike, and each round compares settings measured
minutes apart at most.

A setting is recommended only when it beats the noise: measured against the defaults round by
round (the geometric mean, over the sizes in scope, of the defaults' time over the setting's),
its median gain is above 5% and above the defaults' own spread between rounds, and it was ahead
in every round. A setting that fails is recorded with its error and not run again.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

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
    return [(repeat, variant) for repeat in [*first, *range(repeats)] for variant in variants]


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
    noise: float  # the defaults' own spread between rounds over the same cells (0.03: 3%)

    @property
    def beats_noise(self) -> bool:
        return self.rounds >= 2 and self.gain > max(MIN_GAIN, self.noise) and self.worst_round > 0


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
    noise = _geomean(defaults.max() / defaults.min()) - 1
    return Comparison(
        setting=setting,
        scope=scope,
        cells=pair.droplevel("repeat").index.nunique(),
        rounds=len(speedups),
        gain=statistics.median(speedups) - 1,
        worst_round=min(speedups) - 1,
        noise=noise,
    )


def _geomean(values: pd.Series) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def scopes(frame: pd.DataFrame) -> list[tuple[str, float, float]]:
    """'all sizes' and each band that holds a measured size."""
    sizes = set(frame["size_bytes"])
    bands = [(name, low, high) for name, low, high in BANDS if any(low <= s < high for s in sizes)]
    return [("all sizes", 0, math.inf), *bands]


def comparisons(frame: pd.DataFrame, settings: list[str]) -> dict[str, list[Comparison]]:
    """scope -> every setting's comparison with the defaults, best first."""
    result = {}
    for scope, low, high in scopes(frame):
        found = [c for s in settings if s != DEFAULTS if (c := compare(frame, s, scope, low, high))]
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


def verdicts(found: dict[str, list[Comparison]], chosen: dict[str, Comparison]) -> dict[str, dict[str, str]]:
    """Per scope: the fastest setting (the defaults when nothing was faster) and what to make of it."""
    result = {}
    for scope, ranked in found.items():
        best = ranked[0] if ranked and ranked[0].gain > 0 else None
        if scope in chosen:
            result[scope] = {"best": chosen[scope].setting, "verdict": "recommended"}
        elif best is None:
            result[scope] = {"best": DEFAULTS, "verdict": "keep the defaults"}
        elif best.beats_noise:  # overall only: it costs some band too much
            result[scope] = {"best": best.setting, "verdict": "slower in some band: see the bands"}
        else:
            result[scope] = {"best": best.setting, "verdict": "within noise"}
    return result


def judge(
    found: dict[str, list[Comparison]],
    chosen: dict[str, Comparison],
    settings: list[SettingRecord],
    nodes: list[int],
) -> tuple[list[Finding], str]:
    """Findings (recommendations, failed and ignored settings) and the one-line advice."""
    env_of = {s.name: s.env for s in settings}
    findings = [_failed(s, nodes) for s in settings if s.error]
    findings += [_ignored(s, nodes) for s in settings if s.ignored]
    findings += [_recommend(c, env_of[c.setting], found, nodes) for c in chosen.values()]
    overall = chosen.get("all sizes")
    if overall:
        advice = f"use {overall.setting}: {export_lines(env_of[overall.setting])}"
    elif chosen:
        advice = "keep the defaults overall; a setting helps only one size band (see the findings)"
    else:
        advice = (
            f"keep the defaults: no setting beat them by more than {MIN_GAIN:.0%} "
            "and the noise between rounds"
        )
    return findings, advice


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
    found = comparisons(frame, [v.name for v in variants]) if not frame.empty else {}
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
        "settings": [asdict(s) for s in settings],
        "table": summary(frame).to_dict("records") if not frame.empty else [],
        "verdicts": verdicts(found, chosen),
        "comparisons": {scope: [asdict(c) for c in ranked] for scope, ranked in found.items()},
        "advice": advice,
    }
    return findings, section, rows


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
