"""No output carries a planted secret: every file a run writes, and what it prints, grepped.

The bench test plants credentials in variables the bench collects (TORCH_*, PYTORCH_*, NCCL_*),
under innocent names and secret ones, and in a settings sweep's value (so the config section,
the sweep's rows and CSV labels, its worker children and the progress labels carry it), then
walks every file under --out. The explain tests quote log lines that hold a token.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import torchrun
from helpers.explain_excerpts import HEALTHY

HF = "hf_" + "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3k"
GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PLANTED_ENV = {
    # innocent names holding a credential inside their value
    "TORCH_HOME": "https://alice:s3cr3tTOKENvalue@models.example/torch",
    "PYTORCH_EXTRA_ARGS": f"--hf-token {HF} --api-key=apiKEYplanted42 --lr 3",
    "NCCL_NOTES": "aws AKIAIOSFODNN7EXAMPLE",
    # a secret's name: masked whole
    "TORCH_HUB_TOKEN": GHP,
    # not secrets: must stay visible
    "NCCL_IB_PKEY": "0x8001",
}
SECRETS = ["s3cr3tTOKENvalue", HF, "apiKEYplanted42", "AKIAIOSFODNN7EXAMPLE", GHP, "sw33pPASS"]
SWEEP = "PYTORCH_SWEPT_URL=https://bob:sw33pPASS@sweep.example/a"


def every_file(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): path.read_text(errors="replace")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def leaks(texts: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, secret) for name, text in texts.items() for secret in SECRETS if secret in text]


@pytest.mark.multiproc
def test_a_bench_run_writes_and_prints_no_planted_secret(out_dir, monkeypatch):
    for name, value in PLANTED_ENV.items():
        monkeypatch.setenv(name, value)
    args = ["-e", "64K", "-n", "3", "-w", "1", "--no-ddp", "--probes", "all_reduce", "--sweep", SWEEP]
    args += ["--sweep-repeats", "2"]  # the fewest rounds: the masking is the same in each
    run = torchrun(2, args, out_dir, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    files = every_file(out_dir)
    sinks = {"report.json", "results.csv", "report.md", "report.html", "exclude.txt", "junit.xml"}
    sinks.add("nccldoctor.prom")
    assert sinks <= set(files), sorted(files)
    assert leaks({**files, "stdout": run.stdout, "stderr": run.stderr}) == []
    report = run.report
    variables = report["environment"]["variables"]
    # the diagnosis keeps what is not secret: hosts, option names, the partition key
    assert variables["TORCH_HOME"] == "https://***@models.example/torch"
    assert variables["PYTORCH_EXTRA_ARGS"] == "--hf-token *** --api-key=*** --lr 3"
    assert variables["NCCL_NOTES"] == "aws ***"
    assert variables["TORCH_HUB_TOKEN"] == "***"
    assert variables["NCCL_IB_PKEY"] == "0x8001"
    # the sweep measured under its (masked) setting, and says so in every file
    swept = {r["setting"] for r in report["results"] if r.get("sweep") == "settings"}
    assert "PYTORCH_SWEPT_URL=https://***@sweep.example/a" in swept, swept
    for name in ("results.csv", "report.md", "junit.xml"):
        assert "PYTORCH_SWEPT_URL=https://***@sweep.example/a" in files[name], name


def explain(log: Path, out: Path, *more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nccldoctor", "explain", str(log), "--out", str(out), *more],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_explain_quotes_an_error_line_without_its_token(tmp_path):
    log = tmp_path / "rank0.log"
    line = (
        "node1:2201:2290 [0] misc/socket.cc:483 NCCL WARN socketStartConnect: Connect to "
        "172.17.0.1<45763> failed : Connection refused"
    )
    log.write_text(
        "node1:2201:2201 [0] NCCL INFO Bootstrap : Using docker0:172.17.0.1<0>\n"
        "node1:2201:2201 [0] NCCL INFO NET/Socket : Using [0]docker0:172.17.0.1<0>\n"
        f"{line} (proxy https://carol:s3cr3tTOKENvalue@proxy.example:3128, token={HF})\n"
    )
    done = explain(log, tmp_path / "out")
    assert done.returncode == 1, done.stdout + done.stderr
    files = every_file(tmp_path / "out")
    assert leaks({**files, "stdout": done.stdout, "stderr": done.stderr}) == []
    report = json.loads(files["report.json"])
    assert report["findings"][0]["code"] == "iface_virtual"  # the diagnosis is unchanged
    quoted = " ".join(line for f in report["findings"] for line in f["evidence"].get("lines", []))
    # an unquoted value runs to the next space: the ")" after it goes too, not a secret's tail
    assert f"{line} (proxy https://***@proxy.example:3128, token=***" in quoted


def test_an_unexplained_failure_quotes_its_last_lines_without_the_token(tmp_path):
    log = tmp_path / "odd.log"
    log.write_text(HEALTHY + f"FATAL: weights download failed: https://dave:{HF}@hub.example/w.pt\n")
    done = explain(log, tmp_path / "out")
    assert done.returncode == 3, done.stdout + done.stderr
    json_out = explain(log, tmp_path / "out2", "--json")
    texts = {**every_file(tmp_path / "out"), "stdout": done.stdout, "json": json_out.stdout}
    assert leaks(texts) == []
    assert "FATAL: weights download failed: https://***@hub.example/w.pt" in texts["report.json"]
    assert "https://***@hub.example/w.pt" in done.stdout and "https://***@hub.example/w.pt" in json_out.stdout


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nccldoctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_preflight_and_show_write_and_print_no_planted_secret(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: master_not_listening, exit 0
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    out = tmp_path / "pf"
    done = cli(
        "preflight", "--master-addr", "127.0.0.1", "--master-port", port, "--out", str(out), env=PLANTED_ENV
    )
    assert done.returncode == 0, done.stderr
    files = every_file(out)
    assert leaks({**files, "stdout": done.stdout, "stderr": done.stderr}) == []
    variables = json.loads(files["report.json"])["environment"]["variables"]
    assert variables["TORCH_HOME"] == "https://***@models.example/torch"
    assert variables["NCCL_IB_PKEY"] == "0x8001"

    # A report an older nccldoctor wrote, secrets and all: `show` prints none of them.
    old = json.loads(files["report.json"])
    old["environment"]["variables"].update(PLANTED_ENV)
    old["findings"][0]["message"] = f"--hf-token {HF} https://u:s3cr3tTOKENvalue@h.ex/x"
    (out / "report.json").write_text(json.dumps(old))
    shown = cli("show", str(out))
    assert shown.returncode == 0, shown.stderr
    assert leaks({"stdout": shown.stdout, "stderr": shown.stderr}) == []
    assert "--hf-token *** https://***@h.ex/x" in shown.stdout  # short: one line of the table
