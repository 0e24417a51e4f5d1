"""The GPU kit's Python side (benchmarks/gpu_check.sh runs it): a bare matmul, and the fixtures.

    python benchmarks/gpu_kit.py matmul --device cuda|cpu --out FILE
    python benchmarks/gpu_kit.py collect OUT_DIR --mode gpu|cpu

`matmul`: the compute probe's matmul (the same size and dtype: nccldoctor.probes.health.compute)
in a bare loop between two clock reads, as any GEMM benchmark times it; its TFLOP/s go to FILE.
On a CPU, one thread, as the probe runs.

`collect`: from what gpu_check.sh left in OUT_DIR (run/report.json, matmul.json,
ddp_overhead.txt, nccl_info.*.log) writes the fixtures: report.json, nvml.json (the health
phase's NVML reading, GPU only), nccl_info.log (GPU only) and ratios.json, and prints the ratios:

- compute probe TFLOP/s / bare matmul TFLOP/s, target >= 0.95 (the probe measures the GPU,
  not its own overhead);
- DDP benchmark tokens/s / bare DDP loop tokens/s (benchmarks/ddp_overhead.py), target >= 0.97.

On the CPU path the ratios are printed but not judged: a CI host shares its cores.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

TARGETS = {"compute_vs_bare_matmul": 0.95, "ddp_vs_bare_loop": 0.97}
MATMUL_SECONDS = 1.0  # of timed matmuls: long enough that the clock reads do not count


def bare_matmul(device_name: str) -> dict[str, Any]:
    """TFLOP/s of the probe's matmul in a plain loop (one CPU thread on a CPU)."""
    import torch

    from nccldoctor.precision import compute_dtype, dtype_name
    from nccldoctor.probes.health.compute import MATMUL_N

    device = torch.device(device_name)
    n, dtype = MATMUL_N[device.type], compute_dtype(device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    c = torch.empty(n, n, device=device, dtype=dtype)

    def timed(repeats: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b, out=c)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed(3)  # warm-up: kernel selection, clocks
    one = max(timed(3) / 3, 1e-9)
    repeats = max(3, int(MATMUL_SECONDS / one))
    seconds = timed(repeats)
    tflops = 2 * n**3 * repeats / seconds / 1e12
    return {"device": device_name, "n": n, "dtype": dtype_name(dtype), "repeats": repeats, "tflops": tflops}


def probe_tflops(report: dict[str, Any]) -> float | None:
    """The compute probe's TFLOP/s (the median over ranks; one rank in the kit)."""
    rows = (report.get("stragglers") or {}).get("ranks") or []
    values = sorted(row["tflops"] for row in rows if row.get("tflops"))
    return values[len(values) // 2] if values else None


def ddp_ratio(text: str) -> dict[str, float] | None:
    """benchmarks/ddp_overhead.py's medians: 'median tokens/s: bench A, bare B; bench / bare R'."""
    found = re.search(r"median tokens/s: bench ([\d.]+), bare ([\d.]+); bench / bare ([\d.]+)", text)
    if not found:
        return None
    bench, bare, ratio = (float(v) for v in found.groups())
    return {"bench_tokens_per_s": bench, "bare_tokens_per_s": bare, "ratio": ratio}


def ratio_line(name: str, label: str, ratio: float | None, judged: bool) -> str:
    if ratio is None:
        return f"ratio {label}: not measured"
    verdict = ("ok" if ratio >= TARGETS[name] else "MISS") if judged else "not judged on the CPU path"
    return f"ratio {label}: {ratio:.3f} (target >= {TARGETS[name]}: {verdict})"


def save_nccl_log(out: Path) -> bool:
    """NCCL's INFO files (one per process, %h.%p) as one nccl_info.log."""
    parts = sorted(p for p in out.glob("nccl_info.*.log"))
    if not parts:
        return False
    with (out / "nccl_info.log").open("w") as merged:
        for part in parts:
            merged.write(part.read_text(errors="replace"))
            part.unlink()
    return True


def collect(out: Path, mode: str) -> int:
    report_path = out / "run" / "report.json"
    if not report_path.exists():
        print(f"gpu kit: no report at {report_path}: the bench did not finish", file=sys.stderr)
        return 1
    report = json.loads(report_path.read_text())
    shutil.copyfile(report_path, out / "report.json")
    saved = ["report.json"]
    if mode == "gpu":
        (out / "nvml.json").write_text(json.dumps(report.get("health", {}), indent=2) + "\n")
        saved.append("nvml.json")
        if save_nccl_log(out):
            saved.append("nccl_info.log")
    matmul = json.loads((out / "matmul.json").read_text()) if (out / "matmul.json").exists() else None
    ddp_text = (out / "ddp_overhead.txt").read_text() if (out / "ddp_overhead.txt").exists() else ""
    probe = probe_tflops(report)
    compute_ratio = probe / matmul["tflops"] if probe and matmul else None
    ddp = ddp_ratio(ddp_text)
    ratios = {
        "mode": mode,
        "bench_exit_code": report.get("exit_code"),
        "probe_tflops": probe,
        "bare_matmul": matmul,
        "compute_vs_bare_matmul": compute_ratio,
        "ddp_overhead": ddp,
        "ddp_vs_bare_loop": ddp["ratio"] if ddp else None,
        "targets": TARGETS,
    }
    (out / "ratios.json").write_text(json.dumps(ratios, indent=2) + "\n")
    saved.append("ratios.json")
    judged = mode == "gpu"
    print(ratio_line("compute_vs_bare_matmul", "compute probe / bare matmul TFLOP/s", compute_ratio, judged))
    print(
        ratio_line(
            "ddp_vs_bare_loop", "DDP benchmark / bare DDP loop tokens/s", ratios["ddp_vs_bare_loop"], judged
        )
    )
    print(f"gpu kit: saved {', '.join(saved)} in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    mm = sub.add_parser("matmul", help="bare matmul TFLOP/s as JSON")
    mm.add_argument("--device", default="cuda")
    mm.add_argument("--out", type=Path, required=True)
    co = sub.add_parser("collect", help="write the fixtures and print the ratios")
    co.add_argument("out", type=Path)
    co.add_argument("--mode", choices=("gpu", "cpu"), required=True)
    args = p.parse_args(argv)
    if args.command == "matmul":
        args.out.write_text(json.dumps(bare_matmul(args.device), indent=2) + "\n")
        return 0
    return collect(args.out, args.mode)


if __name__ == "__main__":
    sys.exit(main())
