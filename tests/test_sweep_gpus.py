"""Before a sweep's children start: the parent's CUDA cache is emptied, and GPUs in
EXCLUSIVE_PROCESS compute mode (one CUDA context per GPU) give one probe_skipped finding instead
of every setting failing. No GPU here: the compute modes come from a fake NVML or stand-ins."""

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from helpers.fake_nvml import COMPUTEMODE_DEFAULT, COMPUTEMODE_EXCLUSIVE_PROCESS, DRIVER_NOT_LOADED, fake_nvml
from test_gpuhealth import h100_spec

import nccldoctor.probes.gpu_device as gpu_device
from nccldoctor.config import parse_args
from nccldoctor.gpuhealth import children_blocked, exclusive_ranks, read_compute_mode, read_gpus
from nccldoctor.probes.network import NetworkPlan
from nccldoctor.probes.nic_sweep import NicSweepPhase
from nccldoctor.probes.settings_sweep import SettingsSweepPhase

UUID = "GPU-566e6f65-c38e-b12f-4824-6944218668b9"


def test_only_exclusive_process_gpus_block_the_children():
    modes = {0: COMPUTEMODE_DEFAULT, 1: COMPUTEMODE_EXCLUSIVE_PROCESS, 2: None, 3: 2, 4: 1}
    assert exclusive_ranks(modes) == [1]
    assert exclusive_ranks({0: None, 1: COMPUTEMODE_DEFAULT}) == []


def test_the_finding_says_why_and_how_to_fix_it():
    finding = children_blocked("settings sweep", [1, 3], nodes=[0, 1])
    assert finding.code == "probe_skipped" and finding.ranks == [1, 3] and finding.nodes == [0, 1]
    assert "settings sweep: not run" in finding.message and "EXCLUSIVE_PROCESS" in finding.message
    assert "nvidia-smi -c DEFAULT" in finding.fix


def test_compute_mode_is_read_by_uuid_and_with_every_gpu():
    nvml = fake_nvml([h100_spec(nvmlDeviceGetComputeMode=COMPUTEMODE_EXCLUSIVE_PROCESS)])
    assert read_compute_mode(UUID, nvml) == COMPUTEMODE_EXCLUSIVE_PROCESS
    assert nvml.calls == {"init": 1, "shutdown": 1}
    assert read_compute_mode("GPU-not-here", nvml) is None
    assert read_compute_mode("", nvml) is None
    assert read_compute_mode(UUID, fake_nvml([], init_error=DRIVER_NOT_LOADED)) is None
    assert read_gpus(nvml).gpus[0].compute_mode == COMPUTEMODE_EXCLUSIVE_PROCESS
    assert read_gpus(fake_nvml([h100_spec()])).gpus[0].compute_mode is None  # not supported: unknown


def ctx_of(rank: int, device: torch.device, store) -> SimpleNamespace:
    job = SimpleNamespace(rank=rank, world_size=2, device=device, nodes_of=lambda ranks: sorted(ranks))
    return SimpleNamespace(job=job, store=store, remaining_s=lambda: 5.0)


@pytest.fixture
def emptied(monkeypatch) -> list:
    calls = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    return calls


@pytest.mark.parametrize(("peer_mode", "blocked"), [("3", [1]), ("0", []), ("", [])])
def test_every_rank_decides_from_every_ranks_mode(monkeypatch, emptied, peer_mode, blocked):
    monkeypatch.setattr(gpu_device, "device_uuid", lambda device: UUID)
    monkeypatch.setattr(gpu_device, "read_compute_mode", lambda uuid: COMPUTEMODE_DEFAULT)
    store = dist.HashStore()
    store.set("settings_sweep/compute_mode/1", peer_mode)  # rank 1 read its GPU already
    finding = gpu_device.sweep_blocked(ctx_of(0, torch.device("cuda", 0), store), "settings_sweep")
    assert emptied == ["empty_cache"]  # before any child starts
    assert store.get("settings_sweep/compute_mode/0") == b"0"
    assert (finding.ranks if finding else []) == blocked


def test_on_a_cpu_nothing_is_asked_and_nothing_emptied(emptied):
    store = dist.HashStore()
    assert gpu_device.sweep_blocked(ctx_of(0, torch.device("cpu"), store), "nic_sweep") is None
    assert emptied == [] and store.num_keys() == 0


def blocked_ctx(rank: int):
    config = parse_args(["--sweep", "NCCL_ALGO=Ring,Tree"])
    network = NetworkPlan(True, in_use="eth0", sweep=["eth0", "eth1"], sweep_variable="NCCL_SOCKET_IFNAME")
    ctx = ctx_of(rank, torch.device("cuda", 0), None)
    ctx.published = {"network": network}
    ctx.job.backend = "nccl"
    ctx.step = lambda label: None
    return config, ctx


@pytest.mark.parametrize("phase_class", [NicSweepPhase, SettingsSweepPhase])
@pytest.mark.parametrize("rank", [0, 1])
def test_a_blocked_sweep_starts_no_child_and_rank_0_reports_once(monkeypatch, phase_class, rank):
    module = __import__(phase_class.__module__, fromlist=["sweep_blocked"])
    finding = children_blocked("sweep", [1])
    monkeypatch.setattr(module, "sweep_blocked", lambda ctx, sweep: finding)
    monkeypatch.setattr(module.VariantRunner, "for_phase", lambda *a: pytest.fail("a child was started"))
    config, ctx = blocked_ctx(rank)
    result = phase_class(config).run(ctx)
    assert result.findings == ([finding] if rank == 0 else []) and result.rows == []


def test_a_gpu_not_in_default_mode_shows_its_mode_in_the_table():
    from nccldoctor.gpuhealth import health_rows
    from nccldoctor.reports.sections.health import gpu_table

    nvml = fake_nvml([h100_spec(nvmlDeviceGetComputeMode=COMPUTEMODE_EXCLUSIVE_PROCESS), h100_spec()])
    rows = health_rows({0: read_gpus(nvml)})
    assert rows[0]["compute_mode"] == "exclusive_process" and "compute_mode" not in rows[1]
    frame = gpu_table(SimpleNamespace(sections={"health": {"gpus": rows}}))
    assert list(frame["compute_mode"]) == ["exclusive_process", "-"]
