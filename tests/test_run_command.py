"""`nccldoctor run`: torchrun's exit status replaced by the report's code the ranks left.

A fake torchrun (tests/helpers/fake_torchrun.py) writes the ranks' codes with the real writer
(nccldoctor.exitstatus.record), so each mapping is tested through the real launch, status
folder and reading; the real bench under the wrapper is in test_run_command_multiproc.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HELPERS

from nccldoctor import exitstatus
from nccldoctor.cli import parse_args
from nccldoctor.commands import run as run_command

FAKE = [sys.executable, str(HELPERS / "fake_torchrun.py")]


def nccldoctor_run(monkeypatch, capsys, argv: list[str], **scenario) -> tuple[int, str]:
    """`nccldoctor run ARGV` in this process with the fake torchrun; (exit code, stderr)."""
    monkeypatch.setattr(run_command, "TORCHRUN", FAKE)
    monkeypatch.setenv("FAKE_TORCHRUN", json.dumps(scenario))
    code = run_command.run(parse_args(["run", *argv]))
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("code", "torchrun_exit"), [(0, 0), (1, 1), (2, 1), (3, 1)])
def test_the_ranks_agreed_code_is_the_exit_code_not_torchruns(monkeypatch, capsys, code, torchrun_exit):
    exit_code, err = nccldoctor_run(monkeypatch, capsys, [], codes=[code, code], exit=torchrun_exit)
    assert (exit_code, err) == (code, "")


def test_a_rank_that_left_no_code_makes_the_run_incomplete(monkeypatch, capsys):
    # Rank 1 was killed (OOM, segfault in the backend) before it could write; rank 0 passed.
    exit_code, err = nccldoctor_run(monkeypatch, capsys, [], codes=[0, None], exit=1)
    assert exit_code == 3
    assert "local rank(s) 1 of 2 left no exit code" in err and err.count("\n") == 1


def test_ranks_that_disagree_make_the_run_incomplete(monkeypatch, capsys):
    exit_code, err = nccldoctor_run(monkeypatch, capsys, [], codes=[0, 1], exit=1)
    assert exit_code == 3 and "different exit codes [0, 1]" in err


def test_torchrun_refusing_its_own_options_is_a_usage_error_in_one_line(monkeypatch, capsys):
    exit_code, err = nccldoctor_run(monkeypatch, capsys, ["--quick"], exit=2)  # a bench flag before --
    assert exit_code == 2 and err.count("\n") == 1
    assert "torchrun refused its options" in err and "the bench's flags go after `--`" in err


def test_torchrun_failing_before_any_rank_wrote_is_incomplete(monkeypatch, capsys):
    # e.g. the rendezvous timed out: the other nodes never came, nothing was judged.
    exit_code, err = nccldoctor_run(monkeypatch, capsys, ["--nnodes", "2"], exit=1)
    assert exit_code == 3 and "torchrun exited 1 and no rank left an exit code" in err


def test_torchruns_options_pass_untouched_and_the_bench_flags_follow_the_module(
    monkeypatch, capsys, tmp_path
):
    argv_file = tmp_path / "argv"
    options = ["--nnodes=2", "--rdzv_endpoint", "node1:29500", "--nproc-per-node", "4"]
    flags = ["--quick", "--out", "some dir"]
    nccldoctor_run(monkeypatch, capsys, [*options, "--", *flags], codes=[0], argv_file=str(argv_file))
    # node options given: neither --standalone nor a second --nproc-per-node is added
    assert argv_file.read_text().split("\n") == [*options, "-m", "nccldoctor.bench", *flags]


@pytest.mark.parametrize(
    ("options", "added"),
    [
        ([], ["--standalone", "--nproc-per-node", "2"]),  # no GPU here: two Gloo ranks
        (["--nproc_per_node=3"], ["--standalone"]),
        (["--master-addr", "n1", "--node_rank", "1"], ["--nproc-per-node", "2"]),
        (["--rdzv-backend=c10d"], ["--nproc-per-node", "2"]),
        (["--standalone"], ["--nproc-per-node", "2"]),
    ],
)
def test_defaults_fill_only_what_the_options_leave_out(options, added):
    assert run_command.node_defaults(options, gpus=0, env={}) == added
    assert run_command.node_defaults([], gpus=8, env={}) == ["--standalone", "--nproc-per-node", "8"]


def test_torchruns_own_environment_variables_count_as_options():
    # What Kubeflow's PyTorchJob sets in every pod: --standalone would cut the pod off the job.
    pytorchjob = {"PET_NNODES": "4", "PET_NODE_RANK": "1", "PET_MASTER_ADDR": "job-master-0"}
    assert run_command.node_defaults([], gpus=8, env=pytorchjob) == ["--nproc-per-node", "8"]
    assert run_command.node_defaults([], gpus=8, env={**pytorchjob, "PET_NPROC_PER_NODE": "8"}) == []


def test_only_the_last_torchrun_attempt_counts(monkeypatch, tmp_path):
    # torchrun --max-restarts: attempt 0 failed and was restarted, attempt 1 passed.
    monkeypatch.setenv(exitstatus.STATUS_DIR_ENV, str(tmp_path))
    for restart, code in [(0, 1), (1, 0)]:
        for local_rank in (0, 1):
            monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", str(restart))
            monkeypatch.setenv("LOCAL_RANK", str(local_rank))
            monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
            exitstatus.record(code)
    (tmp_path / "9.0.json").write_text("{not json")  # a torn file is no rank's word
    statuses = exitstatus.read(tmp_path)
    assert [(s.restart, s.local_rank, s.code) for s in statuses] == [(1, 0, 0), (1, 1, 0)]
    assert run_command.verdict(1, statuses) == (0, None)


def test_a_rank_outside_the_wrapper_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.delenv(exitstatus.STATUS_DIR_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    exitstatus.record(1)
    assert list(tmp_path.iterdir()) == []


def start_wrapper(scenario: dict) -> subprocess.Popen:
    """`nccldoctor run` as a process of its own (to be signalled), with the fake torchrun."""
    script = (
        "from nccldoctor.commands import run; from nccldoctor.cli import main; "
        f"run.TORCHRUN = {FAKE!r}; main(['run'])"
    )
    env = {**os.environ, "FAKE_TORCHRUN": json.dumps(scenario)}
    return subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)


def wait_ready(ready: Path) -> None:
    give_up = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < give_up:
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_reaches_torchrun_and_the_ranks_code_is_still_the_answer(tmp_path, signum):
    # A Slurm time limit (SIGTERM) or Ctrl-C: the ranks stop, write the partial report and 3.
    ready = tmp_path / "ready"
    scenario = {"codes": [0, 0], "exit": 1, "wait_signal": True, "ready_file": str(ready)}
    wrapper = start_wrapper(scenario)
    wait_ready(ready)
    wrapper.send_signal(signum)
    _, err = wrapper.communicate(timeout=60)
    assert ready.read_text() == signal.Signals(signum).name  # forwarded once, the same signal
    assert wrapper.returncode == 3, err


def test_torchrun_is_stopped_when_the_wrapper_dies_without_a_word(tmp_path):
    # SIGKILL (the OOM killer, a hard job kill): nothing is forwarded, the kernel sends SIGTERM.
    ready = tmp_path / "ready"
    scenario = {"codes": [0], "wait_signal": True, "ready_file": str(ready)}
    wrapper = start_wrapper(scenario)
    wait_ready(ready)
    wrapper.kill()
    wrapper.wait(timeout=30)
    give_up = time.monotonic() + 30
    while ready.read_text() == "" and time.monotonic() < give_up:
        time.sleep(0.05)
    assert ready.read_text() == "SIGTERM"
