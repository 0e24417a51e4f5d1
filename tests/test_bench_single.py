"""`python -m nccldoctor.bench` with no launcher: a single rank that works, fails clearly, stops cleanly."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import QUICK, _env, single

pytestmark = pytest.mark.multiproc


def test_single_rank_runs_and_skips_what_needs_two(out_dir):
    run = single([*QUICK, "--out", str(out_dir)], out_dir)
    assert run.returncode == 0, run.stderr[-2000:]
    report = run.report
    assert report["verdict"] == "pass" and report["job"]["world_size"] == 1
    (skipped,) = [f for f in report["findings"] if f["code"] == "probe_skipped"]
    assert skipped["severity"] == "info" and "sendrecv" in skipped["message"]


def test_default_out_is_a_new_timestamped_folder_printed_at_the_end(tmp_path):
    run = single([*QUICK, "--probes", "all_reduce"], tmp_path, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    (folder,) = (tmp_path / "nccldoctor-out").iterdir()
    assert (folder / "report.json").exists()
    assert f"report: nccldoctor-out/{folder.name}" in run.stdout


def test_bad_flag_is_one_line_exit_2_no_traceback(out_dir):
    run = single(["--iters", "-3"], out_dir)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == ["nccldoctor: error: --iters must be 1 or more, not -3"]


def test_bad_environment_value_is_one_line_exit_2():
    env = _env() | {"RANK": "zero", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "nccldoctor.bench"], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "nccldoctor: error: environment: RANK='zero' is not a whole number"
    ]


def test_sigterm_writes_a_partial_report_and_exits_3(out_dir):
    # A long run, stopped once it has measured something.
    cmd = [
        sys.executable,
        "-m",
        "nccldoctor.bench",
        "-e",
        "1G",
        "-f",
        "2",
        "-n",
        "20",
        "--out",
        str(out_dir),
        "--probes",
        "all_reduce",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    give_up = time.monotonic() + 60
    while not out_dir.exists() and time.monotonic() < give_up:  # rank 0 creates it when it joins
        time.sleep(0.1)
    time.sleep(2.0)  # well into the probes (1G at factor 2 runs for minutes)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 3, stderr[-2000:]
    run_report = json.loads((out_dir / "report.json").read_text())
    assert run_report["verdict"] == "error"
    assert [f["code"] for f in run_report["findings"]] == ["run_interrupted"]
    assert "SIGTERM" in run_report["findings"][0]["message"]
