"""`nccldoctor explain` as a user runs it: exit codes, the first line, --json, stdin, no torch."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

from helpers.explain_excerpts import EXCERPTS, HEALTHY


def explain(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nccldoctor", "explain", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


def test_an_explained_failure_exits_1_and_says_the_root_cause_first(tmp_path):
    log = tmp_path / "logs" / "rank5.log"
    log.parent.mkdir()
    log.write_text(HEALTHY + EXCERPTS["cuda_oom"][0])
    done = explain(str(tmp_path / "logs"), "--out", str(tmp_path / "out"), "--quiet")
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[0].startswith("nccldoctor explain: root cause: gpu_error")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["findings"][0]["code"] == "gpu_error" and report["exit_code"] == 1
    assert report["logs"]["files"][0]["lines"] == HEALTHY.count("\n") + 3
    assert (tmp_path / "out" / "report.md").read_text().startswith("# nccldoctor report: FAIL")


def test_logs_without_a_failure_exit_0(tmp_path):
    log = tmp_path / "ok.log.gz"
    log.write_bytes(gzip.compress(HEALTHY.encode()))
    done = explain(str(log), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("nccldoctor explain: no failure found in the logs")


def test_a_failure_it_cannot_explain_exits_3_with_the_last_error_lines(tmp_path):
    log = tmp_path / "odd.log"
    log.write_text(HEALTHY + "FATAL: frobnicator jammed at stage 3\n")
    done = explain(str(log), "--out", str(tmp_path / "out"), "--quiet")
    assert done.returncode == 3
    assert "a failure nccldoctor cannot explain" in done.stdout.splitlines()[0]
    assert "frobnicator" in done.stdout


def test_a_missing_log_is_one_line_and_exit_2(tmp_path):
    done = explain(str(tmp_path / "nope.log"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no such log" in done.stderr
    assert not (tmp_path / "out" / "report.json").exists()


def test_json_on_stdout_reads_stdin_and_loads_no_torch(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from nccldoctor.cli import main\n"
            "try:\n    main(sys.argv[1:])\nfinally:\n    assert 'torch' not in sys.modules",
            "explain",
            "-",
            "--json",
            "--out",
            str(tmp_path / "out"),
        ],
        input=EXCERPTS["killed"][0],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    root = report["findings"][0]
    assert root["code"] == "rank_killed" and root["ranks"] == [11]
    assert root["evidence"]["hosts"] == ["gpu-node-7"]
    assert report["logs"]["files"] == [
        {"file": "-", "lines": 17, "bytes": len(EXCERPTS["killed"][0]), "error": None}
    ]


def test_the_readme_example_log(tmp_path):
    # README's example output is this command's.
    log = Path(__file__).parent / "fixtures" / "explain_synthetic" / "oom_then_watchdog.log"
    done = explain(str(log), "--quiet", "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "nccldoctor explain: root cause: gpu_error: the GPU ran out of memory (rank 7 on gpu-node-0)"
    )
    findings = json.loads((tmp_path / "out" / "report.json").read_text())["findings"]
    assert [f["code"] for f in findings] == ["gpu_error", "rank_crashed", "collective_timeout"]
    assert all(f["evidence"]["consequence_of"] == "gpu_error" for f in findings[1:])
