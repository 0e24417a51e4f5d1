"""The health phase's NVML reading: taken while the GPUs work, and about the job's GPUs.

No GPU here: the measurements are replaced by stand-ins that hold a "busy" flag for as long
as a real compute probe would keep the GPUs busy, and a fake NVML reports 100 % utilisation
only while that flag is set.
"""

import json
import os
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from helpers.fake_nvml import fake_nvml
from test_gpuhealth import h100_spec

import nccldoctor.probes.health as health
from nccldoctor.probes.gpu_device import device_uuid
from nccldoctor.probes.health.compute import ComputePlan, RankCompute
from nccldoctor.probes.health.stragglers import ScoreThresholds

NAN = float("nan")
COMPUTE_S = 0.3  # about the GPU part of the compute and step probes on an H100


def busy_while(flag: threading.Event) -> dict:
    """An H100 spec whose utilisation, clocks and power follow `flag` (at work or idle)."""
    spec = h100_spec()

    def util(handle):
        return SimpleNamespace(gpu=100 if flag.is_set() else 0, memory=0)

    def reasons(handle):
        return 0x4 if flag.is_set() else 0x1  # SW power cap under load, idle otherwise

    def clock(handle, kind):
        return (1200 if flag.is_set() else 345) if kind == 1 else 2619

    return {
        **spec,
        "nvmlDeviceGetUtilizationRates": util,
        "nvmlDeviceGetCurrentClocksEventReasons": reasons,
        "nvmlDeviceGetClockInfo": clock,
    }


@pytest.fixture
def rank1_of_two(monkeypatch):
    """Rank 1 of 2, the leader of node 1, with every collective measurement stood in for."""
    flag = threading.Event()
    computes = [RankCompute(0.01, 0.01, None, None, 0.01, 0.001, 0.01)] * 2
    plan = ComputePlan(8, 1, 1 << 20, 1, None)

    def compute(device, plan_=None):
        flag.set()  # the GPUs are busy only for the compute probe's duration
        time.sleep(COMPUTE_S)
        flag.clear()
        return plan, computes

    unplaced = [NAN, NAN]  # CPU ranks: no GPU NUMA node, no copies
    monkeypatch.setattr(
        health, "gather_floats", lambda values, device: [[0.0, 2.0, *unplaced], [1.0, 2.0, *unplaced]]
    )
    monkeypatch.setattr(health, "measure_compute", compute)
    monkeypatch.setattr(health, "measure_ring", lambda device: [0.01, 0.01])
    monkeypatch.setattr(
        health, "measure_node_pairs", lambda device, leaders, only=None: [[0, 0.01], [0.01, 0]]
    )
    infos = [SimpleNamespace(pid=os.getpid(), node_rank=1, rank=1)]
    monkeypatch.setattr(health, "read_rank_infos", lambda store, world, timeout: infos)
    launch = SimpleNamespace(rank=1, world_size=2, node_rank=1, local_world_size=1)
    job = SimpleNamespace(launch=launch, rank=1, world_size=2, device=torch.device("cpu"), ranks=[])
    return job, flag


def run_rank1(job, store) -> dict:
    check = health.HealthCheck(job, store, ScoreThresholds(), lambda label: None, lambda: 30.0)
    assert check.run() == ([], {})
    return json.loads(store.get("health/1"))


def test_nvml_is_read_while_the_compute_probe_runs(rank1_of_two, monkeypatch):
    job, flag = rank1_of_two
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([busy_while(flag), busy_while(flag)]))
    published = run_rank1(job, dist.HashStore())
    gpus = published["gpus"]["gpus"]
    assert [g["utilization_pct"] for g in gpus] == [100, 100]  # the busiest reading is kept
    assert [g["sm_clock_mhz"] for g in gpus] == [1200, 1200]  # from the same busy moment
    assert published["host"] is not None and published["error"] == ""
    # and so the load rule applies: a software power cap at 61 % of the clock under load
    inventory = health.GpuInventory.from_json(published["gpus"])
    assert {f.code for f in health.judge_gpus({1: inventory})} == {"gpu_throttled"}


def test_every_rank_publishes_its_gpu_and_rank_0_groups_them_by_node(rank1_of_two, monkeypatch):
    job, _ = rank1_of_two
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml([h100_spec()]))
    store = dist.HashStore()
    run_rank1(job, store)
    assert store.get("health/gpu/1") == b""  # a CPU rank: no GPU of its own
    store.set("health/gpu/0", "GPU-a")
    store.set("health/gpu/2", "GPU-b")
    store.set("health/gpu/3", "GPU-c")
    check = health.HealthCheck(job, store, ScoreThresholds(), lambda label: None, lambda: 5.0)
    assert check._job_gpus([0, 1, 1, 1]) == {0: {"GPU-a"}, 1: {"GPU-b", "GPU-c"}}


def test_device_uuid_is_nvmls_name_for_the_cuda_device(monkeypatch):
    asked = []

    def properties(device):
        asked.append(device)
        return SimpleNamespace(uuid="566e6f65-c38e-b12f-4824-6944218668b9")  # str() of torch's _CUuuid

    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    assert device_uuid(torch.device("cuda", 1)) == "GPU-566e6f65-c38e-b12f-4824-6944218668b9"
    assert asked == [torch.device("cuda", 1)]
    assert device_uuid(torch.device("cpu")) == ""


def test_the_gpu_table_marks_gpus_outside_the_job():
    from nccldoctor.reports.sections.health import gpu_table

    rows = [
        {"node": 0, "gpu": 0, "name": "H100", "job": True},
        {"node": 0, "gpu": 1, "name": "H100", "job": False},
    ]
    report = SimpleNamespace(sections={"health": {"gpus": rows}})  # the view reads only .sections
    frame = gpu_table(report)
    assert list(frame["job"]) == ["yes", "no (not judged)"]
    report.sections["health"]["gpus"] = [{k: v for k, v in r.items() if k != "job"} for r in rows]
    assert "job" not in gpu_table(report).columns
