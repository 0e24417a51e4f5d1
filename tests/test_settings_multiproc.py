"""The settings sweep under torchrun --standalone: fresh processes per setting, failures recorded."""

import pytest
from conftest import QUICK, torchrun

pytestmark = pytest.mark.multiproc
SWEEP = [*QUICK, "--probes", "all_reduce", "--health", "off", "--sweep-repeats", "2"]


def test_a_failing_setting_is_recorded_and_every_run_was_a_fresh_process_seeing_its_own_value(out_dir):
    run = torchrun(2, [*SWEEP, "--sweep", "GLOO_SOCKET_IFNAME=lo,nosuchnic0"], out_dir)
    assert run.returncode == 0, run.stderr[-3000:]
    report = run.report
    (failed,) = [f for f in report["findings"] if f["code"] == "sweep_variant_failed"]
    assert failed["evidence"]["setting"] == "GLOO_SOCKET_IFNAME=nosuchnic0"
    assert "nosuchnic0" in failed["evidence"]["error"] and report["verdict"] == "warn"
    sweep = report["settings_sweep"]
    settings = {s["name"]: s for s in sweep["settings"]}
    assert list(settings) == ["defaults", "GLOO_SOCKET_IFNAME=lo", "GLOO_SOCKET_IFNAME=nosuchnic0"]
    assert [len(s["runs"]) for s in settings.values()] == [2, 2, 1]  # a failed setting is not rerun
    # Each child saw its own setting, not its parent's environment.
    seen = {
        name: {r["child"]["env"]["GLOO_SOCKET_IFNAME"] for r in s["runs"] if r["child"]}
        for name, s in settings.items()
    }
    assert seen == {
        "defaults": {None},
        "GLOO_SOCKET_IFNAME=lo": {"lo"},
        "GLOO_SOCKET_IFNAME=nosuchnic0": set(),
    }
    # Every run of every rank was a new process: 5 runs x 2 ranks, none of them a bench rank.
    pids = [pid for s in settings.values() for r in s["runs"] for pid in r["pids"].values()]
    assert len(pids) == 10 and len(set(pids)) == 10
    assert not set(pids) & set(sweep["bench_pids"].values())
    # The rows carry their setting and round; the main run's rows carry none.
    swept = [r for r in report["results"] if r.get("sweep") == "settings"]
    assert {(r["setting"], r["repeat"]) for r in swept} == {
        (name, repeat) for name in ("defaults", "GLOO_SOCKET_IFNAME=lo") for repeat in (0, 1)
    }
    csv = (out_dir / "results.csv").read_text().splitlines()
    # Rounds stay whole numbers; round 2 is rotated (lo, nosuchnic0 skipped, then the defaults).
    assert csv[-1].endswith(",defaults,settings,1")
    main = [r for r in report["results"] if "sweep" not in r]
    assert main and all(r["setting"] == "" for r in main)
    # The main run's rows carry setting "" (as before any sweep): tables and judgments use only them.
    assert "Settings sweep" in run.stdout and "GLOO_SOCKET_IFNAME=lo" in run.stdout
    assert "## Settings sweep against the defaults" in (out_dir / "report.md").read_text()


def test_nccl_settings_on_the_gloo_backend_are_refused_on_every_rank(out_dir):
    run = torchrun(2, [*SWEEP, "--sweep", "NCCL_ALGO=Ring,Tree"], out_dir)
    assert run.rank_exit_codes() == {0: 2, 1: 2}
    said = [line for line in run.stderr.splitlines() if line.startswith("nccldoctor: error:")]
    assert len(said) == 1 and "NCCL_ALGO does nothing on the gloo backend" in said[0]


def test_sweep_workers_broadcast_from_the_root_given_with_r(out_dir):
    # The children rebuild their config from the spec: every collective flag must reach them,
    # -r included, or a sweep measures another broadcast than the run it is compared with.
    args = [*QUICK, "--probes", "broadcast", "-r", "1", "--health", "off", "--sweep-repeats", "2"]
    run = torchrun(2, [*args, "--sweep", "GLOO_SOCKET_IFNAME=lo"], out_dir)
    assert run.returncode == 0, run.stderr[-3000:]
    results = run.report["results"]
    swept = [r for r in results if "sweep" in r]
    assert swept and {r["root"] for r in swept} == {1}
    assert {r["root"] for r in results if "sweep" not in r} == {1}
