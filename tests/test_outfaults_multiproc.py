"""The bench (torchrun --standalone, 2 Gloo ranks) with --out on a real tmpfs that is full, or
turns read-only mid-run: one error line naming the folder and the cause, exit 3 on every rank
(as `nccldoctor run` reads them), no traceback, no temporary file, no half-written report.
Root is needed to mount; run under the shared lock (see tests/cluster)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import QUICK, Run, _env, torchrun
from helpers.tmpfs import fill, leftovers, read_only, tmpfs

from nccldoctor import exitstatus

pytestmark = pytest.mark.multiproc

FAST = ["--probes", "all_reduce", "--no-ddp", "--health", "off", "--no-html"]


def assert_one_clean_error(run: Run, out: Path, reason: str, status_dir: Path) -> None:
    """The run's stderr holds one nccldoctor line naming `out` and `reason`, nothing of a Python
    traceback from nccldoctor, and every rank left 3 for `nccldoctor run`."""
    (said,) = [line for line in run.stderr.splitlines() if line.startswith("nccldoctor:")]
    expected = f"nccldoctor: error: cannot write the report to {out}: {reason}; the run's verdict ("
    assert said.startswith(expected) and said.endswith(") was not delivered"), run.stderr[-3000:]
    # torchrun's own ChildFailedError summary is a traceback of torchrun; none may be ours.
    assert not re.search(r'File ".*nccldoctor/', run.stderr), run.stderr[-3000:]
    assert "Errno" not in run.stderr, run.stderr[-3000:]
    assert run.rank_exit_codes() == {0: 3, 1: 3}, run.stderr[-3000:]
    assert {s.code for s in exitstatus.read(status_dir)} == {3} and len(exitstatus.read(status_dir)) == 2
    assert not (out / "report.json").exists() and leftovers(out) == []


@pytest.fixture
def status_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the ranks leave their codes, as under `nccldoctor run`."""
    folder = tmp_path / "status"
    folder.mkdir()
    monkeypatch.setenv(exitstatus.STATUS_DIR_ENV, str(folder))
    return folder


def test_a_full_disk_is_one_line_and_exit_3_on_every_rank(tmp_path, status_dir):
    with tmpfs(tmp_path / "disk", size="64k") as disk:
        fill(disk)  # the folder can still be made (and the write test passes): the report cannot
        out = disk / "report"
        run = torchrun(2, [*QUICK, *FAST], out)
        assert_one_clean_error(run, out, "No space left on device", status_dir)
        assert sorted(p.name for p in out.iterdir()) == []


def test_a_disk_turned_read_only_mid_run_is_one_line_and_exit_3_on_every_rank(tmp_path, status_dir):
    # 16M all_reduce, 50 iterations, in two modes: seconds of measuring after its progress line,
    # the trigger to remount (after the folder was made and tested, before the report).
    flags = [*FAST, "-b", "16M", "-e", "16M", "-n", "50", "-w", "1"]
    with tmpfs(tmp_path / "disk", size="1m") as disk:
        out = disk / "report"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        cmd += ["-m", "nccldoctor.bench", "--out", str(out), *flags]
        bench = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        errors: list[str] = []
        drain = threading.Thread(target=lambda: errors.append(bench.stderr.read()))
        drain.start()
        measuring = False
        for line in bench.stdout:
            if not measuring and re.search(r"^\[\d+/\d+\] all_reduce", line):
                read_only(disk)
                measuring = True
        bench.wait(timeout=180)
        drain.join()
        assert measuring, errors[0][-3000:]
        run = Run(bench.returncode, "", errors[0], 0.0, out)
        assert_one_clean_error(run, out, "Read-only file system", status_dir)
