"""Settings sweep: spec validation, the noise rule, and what NCCL's TUNING log says it chose."""

import pytest
from rowmaker import make_row

from nccldoctor.config import parse_args
from nccldoctor.errors import UsageError
from nccldoctor.nccl_tuning import ignored_settings, parse_tuning
from nccldoctor.probes.settings_sweep import (
    DEFAULTS,
    LOG_ROUND,
    backend_logs_tuning,
    interleaved,
    report_settings,
    setting_variants,
)
from nccldoctor.sweepspec import backend_mismatch, combinations, export_lines, parse_sweep
from nccldoctor.variants import VariantOutcome
from nccldoctor.worker import read_spec, spec_collectives, spec_env

# -- the spec ----------------------------------------------------------------------------------


def test_sweep_specs_become_the_product_plus_the_defaults_first():
    spec = parse_sweep(["NCCL_ALGO=Ring,Tree", "NCCL_PROTO=LL,Simple"])
    assert spec == [("NCCL_ALGO", ["Ring", "Tree"]), ("NCCL_PROTO", ["LL", "Simple"])]
    assert combinations(spec)[1] == {"NCCL_ALGO": "Ring", "NCCL_PROTO": "Simple"}
    names = [v.name for v in setting_variants(spec)]
    assert names[0] == DEFAULTS and len(names) == 5
    assert names[1] == "NCCL_ALGO=Ring NCCL_PROTO=LL"
    assert parse_sweep(["NCCL_IB_HCA=mlx5_0,mlx5_1|mlx5_2"]) == [("NCCL_IB_HCA", ["mlx5_0,mlx5_1", "mlx5_2"])]


def test_rounds_are_interleaved_across_settings_and_each_round_starts_with_another_setting():
    variants = setting_variants([("OMP_NUM_THREADS", ["1", "2"])])
    order = [(r, v.name) for r, v in interleaved(variants, 3)]
    assert order == [
        (0, "defaults"),
        (0, "OMP_NUM_THREADS=1"),
        (0, "OMP_NUM_THREADS=2"),
        (1, "OMP_NUM_THREADS=1"),
        (1, "OMP_NUM_THREADS=2"),
        (1, "defaults"),
        (2, "OMP_NUM_THREADS=2"),
        (2, "defaults"),
        (2, "OMP_NUM_THREADS=1"),
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--sweep", "NCCL_ALOG=Ring,Tree"], "did you mean NCCL_ALGO?"),
        (["--sweep", "NCCL_BUFSIZE=4M"], "did you mean NCCL_BUFFSIZE?"),
        (["--sweep", "NCCL_ALGO="], "empty value"),
        (["--sweep", "NCCL_ALGO=Ring,,Tree"], "empty value"),
        (["--sweep", "NCCL_ALGO"], "is not VAR=value1,value2"),
        (["--sweep", "1X=a"], "not an environment variable name"),
        (["--sweep", "NCCL_ALGO=Ring", "--sweep", "NCCL_ALGO=Tree"], "given twice"),
        (["--sweep", "NCCL_ALGO=Ring,Ring"], "repeated"),
        (["--sweep", "NCCL_DEBUG=INFO,WARN"], "set by nccldoctor itself"),
        (["--sweep", "NCCL_ALGO=a,b,c,d,e", "--sweep", "NCCL_PROTO=a,b,c,d"], "4 = 20 settings"),
        (
            ["--sweep", "NCCL_ALGO=a,b", "--max-combos", "1"],
            "--sweep: 2 settings .plus the defaults. is more",
        ),
        (["--sweep", "NCCL_ALGO=a,b", "--sweep-repeats", "1"], "--sweep-repeats must be 2 or more"),
    ],
)
def test_bad_sweep_specs_are_one_line_usage_errors(argv, expected):
    with pytest.raises(UsageError, match=expected.replace("?", r"\?")) as caught:
        parse_args(argv)
    assert "\n" not in str(caught.value)


def test_unknown_nccl_names_far_from_any_known_one_are_accepted_and_others_too():
    assert parse_sweep(["NCCL_SOMETHING_FROM_2030=1,2"])[0][0] == "NCCL_SOMETHING_FROM_2030"
    assert parse_sweep(["GLOO_SOCKET_IFNAME=eth0,eth1"])[0][1] == ["eth0", "eth1"]


def test_settings_the_backend_cannot_feel_are_refused():
    assert "NCCL_ALGO does nothing on the gloo backend" in backend_mismatch([("NCCL_ALGO", ["Ring"])], "gloo")
    two = backend_mismatch([("NCCL_ALGO", ["Ring"]), ("NCCL_PROTO", ["LL"])], "gloo")
    assert "NCCL_ALGO and NCCL_PROTO do nothing on the gloo backend" in two
    assert backend_mismatch([("GLOO_SOCKET_IFNAME", ["eth0"])], "gloo") is None
    assert "GLOO_SOCKET_IFNAME" in backend_mismatch([("GLOO_SOCKET_IFNAME", ["a"])], "nccl")
    assert backend_mismatch([("OMP_NUM_THREADS", ["1"])], "nccl") is None


def test_export_lines_quote_what_the_shell_would_read_otherwise():
    assert export_lines({"NCCL_PROTO": "^LL128", "NCCL_ALGO": "Ring"}) == (
        "export NCCL_ALGO=Ring; export NCCL_PROTO='^LL128'"
    )


# -- the noise rule ----------------------------------------------------------------------------

SIZES = (8, 1024, 1 << 20, 16 << 20)


def outcome(variant, times, ok=True):
    """A finished run whose all_reduce took times[size] microseconds."""
    if not ok:
        return VariantOutcome(variant, [], {0: "exited with 1: boom"}, 1.0)
    rows = [make_row(size_bytes=size, time_us=t, busbw_gbps=size / t / 1e3) for size, t in times.items()]
    return VariantOutcome(variant, rows, {}, 1.0)


def sweep(time_of, repeats=3, spec=(("NCCL_ALGO", ["Ring", "Tree"]),)):
    """Run the judge on made-up times: time_of(setting name, round, size) -> us (None: it failed)."""
    variants = setting_variants(list(spec))
    plan = interleaved(variants, repeats)
    runs, failed = [], set()
    for repeat, variant in plan:
        if variant.name in failed:  # as the bench does: a failed setting is not run again
            runs.append((repeat, VariantOutcome(variant, [], {}, 0.0, skipped=True)))
            continue
        times = {size: time_of(variant.name, repeat, size) for size in SIZES}
        runs.append((repeat, outcome(variant, times, ok=None not in times.values())))
        if None in times.values():
            failed.add(variant.name)
    return report_settings(variants, plan, runs, nodes=[0, 1])


def codes(findings):
    return sorted(f.code for f in findings)


def test_a_setting_ahead_in_every_round_by_more_than_the_noise_is_recommended_with_its_export_line():
    def time_of(name, repeat, size):
        base = 100.0 * (1 + 0.02 * repeat)  # the defaults drift 2% a round
        return base * (0.8 if name == "NCCL_ALGO=Ring" else 1.0)

    findings, section, rows = sweep(time_of)
    (finding,) = findings
    assert finding.code == "tuning_recommendation" and finding.severity.value == "info"
    assert finding.evidence["setting"] == "NCCL_ALGO=Ring" and finding.evidence["scope"] == "all sizes"
    assert finding.evidence["gain"] == pytest.approx(0.25)
    assert finding.fix.startswith("export NCCL_ALGO=Ring")
    assert section["verdicts"]["all sizes"] == {"best": "NCCL_ALGO=Ring", "verdict": "recommended"}
    assert section["advice"].startswith("use NCCL_ALGO=Ring")
    assert {r.setting for r in rows} == {"defaults", "NCCL_ALGO=Ring", "NCCL_ALGO=Tree"}
    assert {r.repeat for r in rows} == {0, 1, 2} and all(r.sweep == "settings" for r in rows)


def test_settings_of_variables_given_out_of_alphabetical_order_are_still_compared():
    spec = (("NCCL_PROTO", ["LL"]), ("NCCL_ALGO", ["Ring"]))  # rows label settings sorted by name

    def time_of(name, repeat, size):
        return 80.0 if name != DEFAULTS else 100.0

    findings, _, rows = sweep(time_of, spec=spec)
    (finding,) = findings
    assert finding.evidence["setting"] == "NCCL_ALGO=Ring NCCL_PROTO=LL"
    assert {r.setting for r in rows} == {"defaults", "NCCL_ALGO=Ring NCCL_PROTO=LL"}


def test_a_gain_smaller_than_the_spread_between_rounds_is_inconclusive_not_keep_the_defaults():
    def time_of(name, repeat, size):
        base = 100.0 * (1.0, 1.3, 0.9)[repeat]  # the defaults swing 44% between rounds
        return base * (0.85 if name == "NCCL_ALGO=Ring" else 1.0)  # a steady 18% gain

    findings, section, _ = sweep(time_of)
    (finding,) = findings
    assert finding.code == "sweep_inconclusive"
    assert finding.evidence["noise"] == pytest.approx(0.444, abs=1e-3)
    assert "--sweep-repeats" in finding.fix
    assert section["advice"].startswith("inconclusive overall: the defaults varied 44% between rounds")
    # the fastest, but not by enough to act on either way
    assert section["verdicts"]["all sizes"] == {"best": "NCCL_ALGO=Ring", "verdict": "inconclusive"}


def test_keep_the_defaults_only_when_the_sweep_could_have_seen_a_five_percent_gain():
    def time_of(name, repeat, size):
        base = 100.0 * (1.0, 1.01, 0.995)[repeat]  # quiet rounds: 1.5%
        return base * (0.98 if name == "NCCL_ALGO=Ring" else 1.0)  # 2%: real, too small to act on

    findings, section, _ = sweep(time_of)
    assert findings == []
    assert section["advice"].startswith("keep the defaults: the sweep could see a 5% gain")
    assert section["verdicts"]["all sizes"] == {"best": "defaults", "verdict": "keep the defaults"}


def test_settings_slower_than_the_defaults_beyond_the_noise_mean_keep_the_defaults_even_when_noisy():
    def time_of(name, repeat, size):
        base = 100.0 * (1.0, 1.2, 0.9)[repeat]  # 33% noise
        return base * (3.0 if name != DEFAULTS else 1.0)  # every setting 3x slower, every round

    findings, section, _ = sweep(time_of)
    assert findings == []
    assert section["advice"] == "keep the defaults: every setting was slower than them by more than the noise"


def aa_sweep(time_of, repeats=3):
    """OMP_NUM_THREADS=1 (what torchrun already exports: an A/A check) and =2."""
    variants = setting_variants([("OMP_NUM_THREADS", ["1", "2"])])
    plan = interleaved(variants, repeats)
    runs = []
    for repeat, variant in plan:
        done = outcome(variant, {size: time_of(variant.name, repeat, size) for size in SIZES})
        done.child = {"env": {"OMP_NUM_THREADS": variant.env.get("OMP_NUM_THREADS", "1")}}
        runs.append((repeat, done))
    return report_settings(variants, plan, runs, nodes=[0])


def test_an_aa_sweep_with_noisy_rounds_is_inconclusive_and_never_recommends():
    # as measured on 2 local ranks here: the A/A setting -18%, +16%, -14% against the defaults
    aa = {0: 1 / 0.82, 1: 1 / 1.16, 2: 1 / 0.86}

    def time_of(name, repeat, size):
        base = 100.0 * (1.0, 1.96, 1.2)[repeat]
        return base * (aa[repeat] if name == "OMP_NUM_THREADS=1" else 1.0)

    findings, section, _ = aa_sweep(time_of)
    assert [f.code for f in findings] == ["sweep_inconclusive"]
    assert findings[0].evidence["same_as_defaults"] == ["OMP_NUM_THREADS=1"]
    assert "OMP_NUM_THREADS=1, the defaults' own values, differed from them by up to" in section["advice"]
    assert section["verdicts"]["all sizes"]["verdict"] == "inconclusive"


def test_an_aa_sweep_never_recommends_the_defaults_own_values_even_when_they_look_faster():
    def time_of(name, repeat, size):  # the A/A setting happens to run 20% faster every round
        return 80.0 if name == "OMP_NUM_THREADS=1" else 100.0

    findings, section, _ = aa_sweep(time_of)
    assert "tuning_recommendation" not in codes(findings)
    assert section["verdicts"]["all sizes"]["verdict"] == "inconclusive"  # 25% A/A gap: the noise


def test_the_aa_gap_is_the_noise_floor_a_gain_must_beat():
    def time_of(name, repeat, size):  # the defaults steady, the A/A setting off by 15% in a round
        if name == "OMP_NUM_THREADS=1":
            return (100.0, 87.0, 100.0)[repeat]
        return 90.0 if name == "OMP_NUM_THREADS=2" else 100.0  # a steady 11% gain: within the A/A gap

    findings, section, _ = aa_sweep(time_of)
    assert "tuning_recommendation" not in codes(findings)
    (compared,) = [c for c in section["comparisons"]["all sizes"] if c["setting"] == "OMP_NUM_THREADS=2"]
    assert compared["noise"] == pytest.approx(100 / 87 - 1) and compared["spread"] == 0.0


def test_a_real_five_fold_difference_is_recommended_through_the_noise():
    def time_of(name, repeat, size):
        base = 100.0 * (1.0, 1.6, 1.2)[repeat]  # 60% noise, as on a busy 2-core machine
        return base * (0.2 if name == "NCCL_ALGO=Ring" else 1.0)

    findings, section, _ = sweep(time_of)
    assert [f.code for f in findings] == ["tuning_recommendation"]
    assert section["verdicts"]["all sizes"] == {"best": "NCCL_ALGO=Ring", "verdict": "recommended"}
    assert section["order"]["round 2"][0] == "NCCL_ALGO=Ring"  # the rotation is recorded


def sweep_cells(world_size=2, time_of=lambda name, repeat, size: 100.0 * (1 + 0.02 * repeat)):
    from nccldoctor.report import Report
    from nccldoctor.reports.sections.settings_sweep import settings_busbw_table, settings_tables

    section = sweep(time_of)[1]
    job = {"world_size": world_size}
    report = Report(job=job, environment={}, results=[], findings=[], sections={"settings_sweep": section})
    table = settings_busbw_table(report).set_index("size")
    return table["defaults"].to_dict(), settings_tables(report)[0][0]


def test_the_sweep_table_shows_latency_bound_sizes_as_time_and_the_rest_in_three_digits():
    cells, title = sweep_cells()
    # 100, 102, 104 us a round: below 64K the time, not busbw's 0.0000784 (0.0000769 to 0.00008) GB/s
    assert cells["8"] == "102 µs (100 to 104)" and cells["1K"] == "102 µs (100 to 104)"
    assert cells["1M"] == "10.3 (10.1 to 10.5)" and cells["16M"] == "164 (161 to 168)"
    assert "busbw in GB/s" in title and "time in µs below 64K" in title


def test_one_rank_latency_bound_cells_show_the_median_time_alone():
    # One rank: busbw is 0 by definition, so it gives no range of times.
    cells, _ = sweep_cells(world_size=1, time_of=lambda name, repeat, size: 50.0)
    assert cells["8"] == "50 µs"


def test_a_setting_behind_in_one_round_is_not_recommended():
    def time_of(name, repeat, size):
        if name == "NCCL_ALGO=Ring":
            return (70.0, 70.0, 104.0)[repeat]
        return 100.0

    findings, _, _ = sweep(time_of)
    assert "tuning_recommendation" not in codes(findings)


def test_a_gain_in_one_size_band_only_is_recommended_for_that_band():
    def time_of(name, repeat, size):
        if name != "NCCL_ALGO=Tree":
            return 100.0
        return 50.0 if size < 64 * 1024 else 150.0  # twice as fast when small, slower when large

    findings, section, _ = sweep(time_of)
    (finding,) = findings
    assert finding.evidence["setting"] == "NCCL_ALGO=Tree" and finding.evidence["scope"] == "small"
    assert "for small messages (below 64K)" in finding.message and "large -33%" in finding.message
    assert section["advice"].startswith("keep the defaults overall")
    assert section["verdicts"]["all sizes"]["verdict"] == "slower in some band: see the bands"
    assert section["verdicts"]["large"] == {"best": "defaults", "verdict": "keep the defaults"}


def test_a_failed_setting_is_recorded_not_rerun_and_the_others_still_compared():
    def time_of(name, repeat, size):
        if name == "NCCL_ALGO=Tree":
            return None
        return 60.0 if name == "NCCL_ALGO=Ring" else 100.0

    findings, section, _ = sweep(time_of)
    assert codes(findings) == ["sweep_variant_failed", "tuning_recommendation"]
    failed = next(f for f in findings if f.code == "sweep_variant_failed")
    assert failed.evidence["setting"] == "NCCL_ALGO=Tree" and "boom" in failed.message
    tree = next(s for s in section["settings"] if s["name"] == "NCCL_ALGO=Tree")
    assert tree["error"].startswith("round 1:") and len(tree["runs"]) == 1


def test_on_nccl_a_first_round_logs_what_nccl_chose_and_is_not_scored():
    variants = setting_variants([("NCCL_ALGO", ["Ring"])])
    plan = interleaved(variants, 2, log_round=True)
    assert [r for r, _ in plan] == [LOG_ROUND, LOG_ROUND, 0, 0, 1, 1]
    assert backend_logs_tuning("nccl", {}) and not backend_logs_tuning("gloo", {})
    assert not backend_logs_tuning("nccl", {"NCCL_DEBUG": "WARN"})  # the user's log: nothing to read

    def run(variant, repeat):  # the log round ran 10x slower: it must not count
        slow = 10.0 if repeat == LOG_ROUND else 1.0
        return outcome(variant, {8: slow * (50.0 if variant.name != DEFAULTS else 100.0)})

    runs = [(r, run(v, r)) for r, v in plan]
    findings, section, rows = report_settings(variants, plan, runs, nodes=[0])
    assert {r["setting"]: r["repeats"] for r in section["table"]} == {"defaults": 2, "NCCL_ALGO=Ring": 2}
    assert section["comparisons"]["all sizes"][0]["noise"] == 0.0  # the slow log round left out
    assert [f.code for f in findings] == ["tuning_recommendation"]
    assert any(r.repeat == LOG_ROUND for r in rows)  # its rows are still in results[]


def test_a_setting_the_launch_environment_already_has_is_marked_as_the_defaults_again():
    variants = setting_variants([("OMP_NUM_THREADS", ["1", "2"])])
    plan = interleaved(variants, 2)
    runs = []
    for repeat, variant in plan:
        done = outcome(variant, {8: 100.0})
        done.child = {"env": {"OMP_NUM_THREADS": variant.env.get("OMP_NUM_THREADS", "1")}}  # torchrun's 1
        runs.append((repeat, done))
    _, section, _ = report_settings(variants, plan, runs, nodes=[0])
    same = {s["name"]: s["same_as_defaults"] for s in section["settings"]}
    assert same == {"defaults": False, "OMP_NUM_THREADS=1": True, "OMP_NUM_THREADS=2": False}


def test_runs_the_deadline_left_out_are_named():
    variants = setting_variants([("NCCL_ALGO", ["Ring"])])
    plan = interleaved(variants, 2)
    runs = [(r, outcome(v, {8: 10.0})) for r, v in plan[:3]]  # round 2 runs Ring first
    findings, _, _ = report_settings(variants, plan, runs, nodes=[0])
    (skipped,) = [f for f in findings if f.code == "probe_skipped"]
    assert skipped.evidence["not_measured"] == ["defaults (round 2)"]


# -- NCCL's own word (GPU runs) ----------------------------------------------------------------

# NCCL 2.23+ format, as printed in a published walkthrough of NCCL_DEBUG_SUBSYS=TUNING output
# (the enqueue.cc format string: "%s: %ld Bytes -> Algo %s proto %s channel{Lo..Hi}={%d..%d}"),
# with the `host:pid:tid [dev]` prefix every NCCL INFO line carries. Not captured on a GPU here.
TUNING_LOG = """\
gpu-7:2211:2211 [0] NCCL INFO NCCL_ALGO set by environment to Tree
gpu-7:2211:2211 [0] NCCL INFO AllReduce: 4194304 Bytes -> Algo Tree proto Simple channel{Lo..Hi}={0..7}
gpu-7:2211:2211 [0] NCCL INFO AllReduce: 4194304 Bytes -> Algo Tree proto Simple channel{Lo..Hi}={0..7}
gpu-7:2211:2211 [0] NCCL INFO AllGather: 1048576 Bytes -> Algo Ring proto LL128 channel{Lo..Hi}={0..3}
"""
# NCCL 2.20-2.22: INFO(NCCL_TUNING, "%ld Bytes -> Algo %d proto %d time %f") on rank 0.
OLD_TUNING_LOG = "node1:77:77 [0] NCCL INFO 1048576 Bytes -> Algo 1 proto 2 time 20.500000\n"


def test_tuning_lines_of_both_nccl_formats_are_read():
    assert parse_tuning(TUNING_LOG) == [
        {"collective": "AllGather", "bytes": 1048576, "algo": "Ring", "proto": "LL128", "calls": 1},
        {"collective": "AllReduce", "bytes": 4194304, "algo": "Tree", "proto": "Simple", "calls": 2},
    ]
    assert parse_tuning(OLD_TUNING_LOG) == [
        {"collective": "?", "bytes": 1048576, "algo": "Ring", "proto": "Simple", "calls": 1}
    ]


def test_settings_nccl_did_not_apply_are_named():
    log = {"env": {"NCCL_ALGO": "Tree"}, "tuning": parse_tuning(TUNING_LOG), "warnings": []}
    assert ignored_settings({"NCCL_ALGO": "Tree"}, log) == []
    assert ignored_settings({"NCCL_ALGO": "Ring"}, {**log, "env": {"NCCL_ALGO": "Ring"}}) == [
        "NCCL_ALGO=Ring: NCCL chose Tree for all_reduce instead"
    ]
    (unread,) = ignored_settings({"NCCL_IB_HCA": "mlx5_0"}, log)
    assert "never said it read NCCL_IB_HCA" in unread
    warned = {**log, "warnings": ["Invalid NCCL_PROTO value 'LL256'"]}
    assert "NCCL warned: Invalid NCCL_PROTO" in ignored_settings({"NCCL_PROTO": "LL256"}, warned)[0]
    assert ignored_settings({"OMP_NUM_THREADS": "1"}, log) == []


# -- the workers' spec ---------------------------------------------------------------------------


def test_a_worker_gets_every_collective_option_of_the_run():
    flags = "-r 1 -b 1K -e 4K -f 2 -n 3 -w 0 -d half -o max -c 0 --probes broadcast,all_reduce"
    collectives = parse_args([*flags.split(), "--expect-busbw", "all_reduce=5"]).collectives
    spec = read_spec(spec_env(collectives, 12.5, prefix="p/", backend="gloo"))
    assert spec_collectives(spec) == collectives  # as JSON, as the child reads it
    assert (spec["timeout"], spec["prefix"], spec["backend"]) == (12.5, "p/", "gloo")
