"""Report files are written whole (nccldoctor.atomic), a disk that is full or read-only is one
line and exit 3 (nccldoctor.outdir.write_report), and `show` on a broken report.json is one
line and exit 2. The bench itself on a real full or read-only tmpfs: test_outfaults_multiproc.py."""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers.tmpfs import fill, leftovers, read_only, tmpfs

from nccldoctor import atomic
from nccldoctor.atomic import write_atomically
from nccldoctor.errors import OutputError, UsageError
from nccldoctor.outdir import REPORT_FILES, prepare_out_dir, write_report
from nccldoctor.reports import make_sinks
from nccldoctor.reports.json_report import JsonSink, load

FIXTURE = Path(__file__).parent / "fixtures" / "reports" / "single_node.json"
OLD, NEW = b"old report\n" * 1000, b"new report\n" * 3000


def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# -- the writer --------------------------------------------------------------------------------


def test_a_write_replaces_the_file_whole_and_is_readable_as_open_would_make_it(tmp_path):
    path = tmp_path / "report.json"
    write_atomically(path, OLD)
    write_atomically(path, "new ✓")  # str: UTF-8
    assert path.read_text() == "new ✓" and leftovers(tmp_path) == []
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600: the gate's user reads it


def _half_then_enospc(real_write):
    def write(fd: int, data) -> int:
        real_write(fd, bytes(data[: len(data) // 2]))  # the disk takes half, then is full
        raise enospc()

    return write


@pytest.mark.parametrize(
    ("function", "fake"),
    [
        ("write", lambda real: _half_then_enospc(real)),
        ("fsync", lambda real: lambda fd: (_ for _ in ()).throw(enospc())),  # NFS says ENOSPC here
        (
            "replace",
            lambda real: lambda *a: (_ for _ in ()).throw(OSError(errno.EROFS, os.strerror(errno.EROFS))),
        ),
    ],
)
def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temp_file(
    tmp_path, monkeypatch, function, fake
):
    path = tmp_path / "report.json"
    write_atomically(path, OLD)
    monkeypatch.setattr(atomic.os, function, fake(getattr(os, function)))
    with pytest.raises(OSError) as error:
        write_atomically(path, NEW)
    monkeypatch.undo()
    assert error.value.errno in (errno.ENOSPC, errno.EROFS)
    assert path.read_bytes() == OLD
    assert leftovers(tmp_path) == []


def _read_until(path: Path, stop: threading.Event, seen: list[bytes]) -> None:
    while not stop.is_set():
        try:
            seen.append(path.read_bytes())
        except FileNotFoundError:
            seen.append(b"<missing>")


def _torn_reads(path: Path, write, seconds: float) -> set[bytes]:
    """Rewrite `path` (OLD, NEW, OLD, ...) with `write` while a thread reads it; what it read
    that is neither whole file, once seen (or after `seconds`)."""
    write(path, OLD)
    stop, seen = threading.Event(), []
    reader = threading.Thread(target=_read_until, args=(path, stop, seen))
    reader.start()
    give_up, i = time.monotonic() + seconds, 0
    try:
        while time.monotonic() < give_up and not {*seen} - {OLD, NEW}:
            write(path, NEW if i % 2 == 0 else OLD)
            i += 1
    finally:
        stop.set()
        reader.join()
    return {*seen} - {OLD, NEW}


def test_a_concurrent_reader_sees_the_old_or_the_new_file_never_a_torn_one(tmp_path):
    assert _torn_reads(tmp_path / "atomic.json", write_atomically, seconds=3) == set()
    # The same reader catches a plain write (truncate, then write): the check can fail.
    assert _torn_reads(tmp_path / "plain.json", Path.write_bytes, seconds=20)


def test_the_report_folder_drops_temp_files_a_killed_writer_left(tmp_path):
    for name in REPORT_FILES:
        atomic.temp_name(tmp_path / name).write_text("half a rep")
    keep = tmp_path / ".notes.txt.1.tmp"  # not ours: stays
    keep.write_text("")
    prepare_out_dir(tmp_path)
    assert leftovers(tmp_path) == [keep.name]


# -- the sinks ---------------------------------------------------------------------------------


class Recording:
    def __init__(self, error: OSError | None = None) -> None:
        self.error, self.called = error, False

    def emit(self, report, out_dir) -> None:
        self.called = True
        if self.error:
            raise self.error


def test_a_sink_that_cannot_write_is_one_output_error_and_the_terminal_prints_nothing(tmp_path):
    report = load(FIXTURE)
    failing, terminal = Recording(enospc()), Recording()
    with pytest.raises(OutputError) as error:
        write_report(report, tmp_path, [Recording(), failing, terminal])
    assert str(error.value) == (
        f"cannot write the report to {tmp_path}: No space left on device; "
        f"the run's verdict ({report.verdict.upper()}) was not delivered"
    )
    assert not terminal.called


def test_a_full_disk_keeps_the_previous_report_whole_and_leaves_no_temp_file(tmp_path):
    report = load(FIXTURE)
    with tmpfs(tmp_path / "disk", size="256k") as disk:
        JsonSink().emit(report, disk)
        before = (disk / "report.json").read_bytes()
        fill(disk)
        with pytest.raises(OutputError, match=f"cannot write the report to {disk}: No space left on device"):
            write_report(report, disk, make_sinks())
        assert (disk / "report.json").read_bytes() == before
        assert leftovers(disk) == []


def test_a_read_only_disk_keeps_the_previous_report_and_says_so(tmp_path):
    report = load(FIXTURE)
    with tmpfs(tmp_path / "disk", size="256k") as disk:
        JsonSink().emit(report, disk)
        before = (disk / "report.json").read_bytes()
        read_only(disk)
        with pytest.raises(OutputError, match=f"cannot write the report to {disk}: Read-only file system"):
            write_report(report, disk, make_sinks())
        assert (disk / "report.json").read_bytes() == before


def test_explain_on_a_full_disk_is_one_line_and_exit_3(tmp_path):
    log = tmp_path / "rank0.log"
    log.write_text("RuntimeError: CUDA error: an illegal memory access was encountered\n")
    with tmpfs(tmp_path / "disk", size="64k") as disk:
        fill(disk)
        done = subprocess.run(
            [sys.executable, "-m", "nccldoctor", "explain", str(log), "--out", str(disk)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 3, done.stderr
        assert done.stderr.splitlines() == [
            f"nccldoctor: error: cannot write the report to {disk}: No space left on device; "
            "the run's verdict (FAIL) was not delivered"
        ]
        assert done.stdout == "" and sorted(os.listdir(disk)) == ["filler"]


# -- `show` on a broken report.json ------------------------------------------------------------


def _show(path: Path) -> str:
    """show's one-line refusal (UsageError: exit 2 from the CLI)."""
    from nccldoctor.commands import load as command

    with pytest.raises(UsageError) as error:
        command("show").run(argparse.Namespace(report=str(path), quiet=True))
    assert "\n" not in str(error.value)
    return str(error.value)


def _corruptions() -> dict[str, bytes]:
    whole = FIXTURE.read_bytes()
    end = len(whole.rstrip())  # cutting only the last newline leaves a whole report
    cases = {f"cut at {at}": whole[:at] for at in (0, 1, 2, 100, end // 4, end // 2, end - 3, end - 1)}
    cases["binary"] = random.Random(0).randbytes(4096)
    cases["NUL bytes"] = b"\0" * 512  # what a crash on some filesystems leaves
    data = json.loads(whole)
    for key, value in [
        ("job", []),
        ("results", {"a": 1}),
        ("results", [1]),
        ("findings", [1]),
        ("complete", "no"),
    ]:
        cases[f"{key}={value!r}"] = json.dumps({**data, key: value}).encode()
    return cases


@pytest.mark.parametrize("name", list(_corruptions()))
def test_show_refuses_a_truncated_or_corrupted_report_in_one_line(tmp_path, name):
    path = tmp_path / "report.json"
    path.write_bytes(_corruptions()[name])
    assert _show(path).startswith(f"show: {path} is not a nccldoctor report.json: ")


def test_show_names_a_core_key_of_the_wrong_type(tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({**json.loads(FIXTURE.read_text()), "job": [1]}))
    assert _show(path).endswith("its job is an array, not an object")


def test_show_on_a_truncated_report_exits_2_with_one_line_and_no_traceback(tmp_path):
    path = tmp_path / "report.json"
    path.write_bytes(FIXTURE.read_bytes()[:5000])
    done = subprocess.run(
        [sys.executable, "-m", "nccldoctor", "show", str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"nccldoctor: error: show: {path} is not a nccldoctor report.json: it is not JSON")


# -- the runner --------------------------------------------------------------------------------


def test_the_bench_turns_a_report_it_cannot_write_into_one_line_and_exit_3(tmp_path, capsys):
    from helpers.bench_parts import make_bench

    report = load(FIXTURE)
    bench = make_bench(argv=["--out", str(tmp_path)])
    written = Recording()
    bench.sinks = lambda options: [written]
    assert bench.deliver(report) == report.exit_code and written.called
    bench.sinks = lambda options: [Recording(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)))]
    assert bench.deliver(report) == 3  # what rank 0 hands every rank through supervisor.finish
    assert capsys.readouterr().err.splitlines() == [
        f"nccldoctor: error: cannot write the report to {tmp_path}: Disk quota exceeded; "
        f"the run's verdict ({report.verdict.upper()}) was not delivered"
    ]
