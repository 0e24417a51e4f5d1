"""`nccldoctor run` around the real bench (torchrun --standalone, 2 Gloo ranks): the report's
code comes back where torchrun alone would say 1 for all three."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import _env

pytestmark = pytest.mark.multiproc


def nccldoctor_run(flags: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nccldoctor.cli", "run", "--nproc-per-node", "2", "--", *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=_env())


def test_a_failed_report_exits_1_through_the_wrapper(tmp_path):
    # A bar no Gloo run on 2 cores reaches: the report is a fail, every rank exits 1.
    out = tmp_path / "report"
    flags = ["--expect-busbw", "1000", "--probes", "all_reduce", "--no-ddp", "--health", "off", "-e", "64K"]
    run = nccldoctor_run([*flags, "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert report["exit_code"] == 1 and "low_bandwidth" in {f["code"] for f in report["findings"]}
    assert run.returncode == 1, run.stderr[-3000:]
    assert "nccldoctor run:" not in run.stderr  # the ranks' agreed code, nothing to explain


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--probes", "all_reduse"], "all_reduse"),  # refused by the bench's parser on every rank
        (["--root", "7", "--no-ddp"], "--root 7"),  # refused after start: the supervisor's abort
    ],
)
def test_a_usage_error_exits_2_not_torchruns_1(flags, message):
    run = nccldoctor_run(flags)
    assert run.returncode == 2, run.stderr[-3000:]
    assert message in run.stderr and "nccldoctor run:" not in run.stderr


def test_a_stopped_run_still_reports_and_exits_3_through_the_wrapper(tmp_path):
    # What Ctrl-C or a Slurm time limit does: the wrapper hands SIGTERM to torchrun, torchrun to
    # the ranks, and they write the partial report and leave 3, which the wrapper exits with.
    out = tmp_path / "report"
    flags = ["--probes", "all_reduce", "--no-ddp", "--health", "off", "-b", "64M", "-e", "64M", "-n", "1000"]
    cmd = [sys.executable, "-m", "nccldoctor.cli", "run", "--nproc-per-node", "2", "--", *flags]
    wrapper = subprocess.Popen([*cmd, "--out", str(out)], env=_env(), stderr=subprocess.PIPE, text=True)
    give_up = time.monotonic() + 120
    while not out.exists() and time.monotonic() < give_up:  # rank 0 joined and made it
        time.sleep(0.2)
    time.sleep(5)  # into the measurement
    wrapper.send_signal(signal.SIGTERM)
    _, err = wrapper.communicate(timeout=120)
    assert wrapper.returncode == 3, err[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] is False and report["exit_code"] == 3
