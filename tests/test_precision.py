"""Which dtype a GPU computes in (bf16, fp16 on pre-Ampere GPUs), and backward outside autocast.

No GPU here: `torch.cuda.is_bf16_supported` is monkeypatched, and the DDP step runs on a fake
model whose autocast is a flag.
"""

import contextlib
from types import SimpleNamespace

import pytest
import torch

from nccldoctor import precision
from nccldoctor.precision import compute_dtype, dtype_name
from nccldoctor.probes.ddp import DdpBenchmark, precision_label
from nccldoctor.probes.health.compute import ComputePlan

GPU = torch.device("cuda", 0)


def gpu_with(monkeypatch, native: bool, emulated: bool = True) -> None:
    """A GPU whose bf16 is native, or only emulated (V100, T4: torch says True by default)."""

    def is_bf16_supported(including_emulation: bool = True) -> bool:
        return native or (including_emulation and emulated)

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)


def test_a_cpu_computes_in_float32():
    assert compute_dtype(torch.device("cpu")) == torch.float32
    assert precision_label(torch.device("cpu")) == "fp32"


def test_an_ampere_or_newer_gpu_gets_bf16(monkeypatch):
    gpu_with(monkeypatch, native=True)
    assert compute_dtype(GPU) == torch.bfloat16
    assert precision_label(GPU) == "bf16 autocast"


def test_a_gpu_with_only_emulated_bf16_gets_fp16(monkeypatch):
    """V100 and T4: torch emulates bf16 and says so unless asked about hardware only."""
    gpu_with(monkeypatch, native=False, emulated=True)
    assert compute_dtype(GPU) == torch.float16
    assert precision_label(GPU) == "fp16 autocast"


def test_an_older_torch_without_the_emulation_flag_is_asked_plainly(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert compute_dtype(GPU) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert precision.gpu_has_native_bf16() and compute_dtype(GPU) == torch.bfloat16


def test_dtype_names_match_the_dtype_flag():
    assert [dtype_name(d) for d in (torch.bfloat16, torch.float16, torch.float32)] == [
        "bfloat16",
        "float16",
        "float32",
    ]


def test_the_compute_plan_says_which_dtype_its_tflops_are_in():
    plan = ComputePlan(matmul_n=8, matmul_repeats=1, copy_bytes=8, copy_repeats=1, host_device_bytes=None)
    assert plan.matmul_dtype == "float32"  # the CPU's; older reports' plans had no such key


class FakeDdp(torch.nn.Module):
    """Records, at each backward, whether the (fake) autocast was on."""

    def __init__(self, bench: "DdpBenchmark") -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))
        self.bench = bench
        self.backward_in_autocast: list[bool] = []

    def forward(self, tokens, targets):
        out = (self.weight * tokens).sum()
        out.register_hook(lambda grad: self.backward_in_autocast.append(self.bench.in_autocast))
        return out

    @contextlib.contextmanager
    def no_sync(self):
        yield


def test_backward_runs_outside_autocast_and_inside_no_sync():
    bench = object.__new__(DdpBenchmark)
    bench.job = SimpleNamespace(device=torch.device("cpu"))
    bench.plan = SimpleNamespace(accum=2)
    bench.scaler = torch.amp.GradScaler("cpu", enabled=False)
    bench.in_autocast = False

    @contextlib.contextmanager
    def fake_autocast():
        bench.in_autocast = True
        try:
            yield
        finally:
            bench.in_autocast = False

    bench.autocast = fake_autocast
    ddp = FakeDdp(bench)
    batches = iter([(torch.ones(3), None)] * 2)
    loss = bench.forward_backward(ddp, batches, sync=True)
    assert ddp.backward_in_autocast == [False, False]
    assert float(loss) == pytest.approx(3.0)  # two micro-batches of 3 / accum 2
    assert ddp.weight.grad.tolist() == [1.0, 1.0, 1.0]
