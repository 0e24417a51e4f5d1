"""The GPU kit (benchmarks/gpu_check.sh) end to end on its CPU path, and its parsing.

CI has no GPU: the kit's CPU path runs the same steps on Gloo with tiny sizes, so the script,
its helper and the fixture layout are exercised on every run.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KIT = ROOT / "benchmarks" / "gpu_check.sh"
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_kit  # noqa: E402


@pytest.mark.multiproc
def test_the_cpu_path_writes_the_fixtures_and_prints_the_ratios(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "NCCLDOCTOR_KIT_CPU": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("RANK", None)
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", str(KIT), str(tmp_path / "kit")], capture_output=True, text=True, timeout=170, env=env
    )
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "kit"
    assert "CPU path" in proc.stdout
    assert "ratio compute probe / bare matmul TFLOP/s: " in proc.stdout
    assert "ratio DDP benchmark / bare DDP loop tokens/s: " in proc.stdout
    assert "not measured" not in proc.stdout, proc.stdout
    assert {p.name for p in out.iterdir()} >= {"report.json", "ratios.json", "matmul.json", "run"}
    assert not (out / "nvml.json").exists() and not (out / "nccl_info.log").exists()  # GPU only
    report = json.loads((out / "report.json").read_text())
    assert report["job"]["world_size"] == 1 and report["job"]["backend"] == "gloo"
    assert report["ddp"]["model"]["preset"] == "tiny" and report["ddp"]["model"]["dtype"] == "float32"
    assert report["stragglers"]["plan"]["matmul_dtype"] == "float32"
    ratios = json.loads((out / "ratios.json").read_text())
    assert ratios["mode"] == "cpu" and ratios["compute_vs_bare_matmul"] > 0 and ratios["ddp_vs_bare_loop"] > 0
    print(f"kit CPU path: {seconds:.1f} s")


def test_the_ddp_overhead_medians_are_read_from_its_output():
    text = "median tokens/s: bench 950, bare 1000; bench / bare 0.950\ntarget >= 0.97: MISS\n"
    expected = {"bench_tokens_per_s": 950.0, "bare_tokens_per_s": 1000.0, "ratio": 0.95}
    assert gpu_kit.ddp_ratio(text) == expected
    assert gpu_kit.ddp_ratio("crashed") is None


def test_ratios_are_judged_only_on_the_gpu_path():
    assert gpu_kit.ratio_line("ddp_vs_bare_loop", "x", 0.99, judged=True).endswith("ok)")
    assert gpu_kit.ratio_line("compute_vs_bare_matmul", "x", 0.9, judged=True).endswith("MISS)")
    assert "not judged" in gpu_kit.ratio_line("ddp_vs_bare_loop", "x", 0.5, judged=False)
    assert gpu_kit.ratio_line("ddp_vs_bare_loop", "x", None, judged=True).endswith("not measured")


def test_the_probe_tflops_are_the_median_rank():
    report = {"stragglers": {"ranks": [{"tflops": 3.0}, {"tflops": 1.0}, {"tflops": 2.0}]}}
    assert gpu_kit.probe_tflops(report) == 2.0
    assert gpu_kit.probe_tflops({}) is None


def test_nccl_files_are_merged_into_one_log(tmp_path):
    (tmp_path / "nccl_info.host.1.log").write_text("a NCCL INFO x\n")
    (tmp_path / "nccl_info.host.2.log").write_text("b NCCL INFO y\n")
    assert gpu_kit.save_nccl_log(tmp_path)
    assert (tmp_path / "nccl_info.log").read_text() == "a NCCL INFO x\nb NCCL INFO y\n"
    assert [p.name for p in tmp_path.iterdir()] == ["nccl_info.log"]
