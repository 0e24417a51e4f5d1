"""init_process_group without a GPU: a fake torch.cuda and a recording init_process_group.

What is checked is what a real NCCL run depends on and a CPU run never exercises: the GPU is
set before init, init gets it as device_id (eager NCCL init), and the NCCL log variables the
nccl_log phase plans are in the environment during the call and gone after it.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
from helpers import fake_dist
from helpers.bench_parts import make_bench
from helpers.fake_cuda import FakeCuda, install

from nccldoctor.probes.nccl_check import NcclLogPhase
from nccldoctor.runtime import Job, LaunchEnv, init_process_group, nccl_inits_eagerly

LAUNCH = LaunchEnv(rank=1, world_size=2, local_rank=1, local_world_size=2, master_addr="h", master_port=1)
NCCL_LOG_VARS = ("NCCL_DEBUG", "NCCL_DEBUG_SUBSYS", "NCCL_DEBUG_FILE")


@pytest.fixture
def clean_nccl_env(monkeypatch):
    for name in NCCL_LOG_VARS:
        monkeypatch.delenv(name, raising=False)


def test_the_gpu_is_set_before_init_and_passed_as_device_id(monkeypatch):
    cuda = install(monkeypatch, FakeCuda(count=2))
    recorder = fake_dist.install(monkeypatch, cuda)
    device = torch.device("cuda", 1)
    init_process_group(dist.HashStore(), LAUNCH, "nccl", device, 60.0)
    assert [c[0] for c in cuda.calls] == ["set_device", "init_process_group"]
    assert cuda.calls[0] == ("set_device", 1)
    (call,) = recorder.inits
    assert call.backend == "nccl" and call.device_id == device
    assert (call.rank, call.world_size, call.timeout) == (1, 2, datetime.timedelta(seconds=60))


def test_gloo_sets_no_gpu_and_passes_no_device_id(monkeypatch):
    cuda = install(monkeypatch, FakeCuda(count=0))
    recorder = fake_dist.install(monkeypatch, cuda)
    init_process_group(dist.HashStore(), LAUNCH, "gloo", torch.device("cpu"), 60.0)
    assert [c[0] for c in cuda.calls] == ["init_process_group"]
    assert recorder.inits[0].backend == "gloo" and recorder.inits[0].device_id is None


def nccl_bench(monkeypatch, tmp_path, cuda_count=1):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the phase's private log folder
    cuda = install(monkeypatch, FakeCuda(count=cuda_count))
    phase = NcclLogPhase()
    bench = make_bench(phases=[phase], launch=LAUNCH)
    bench.job = Job(launch=LAUNCH, backend="nccl", device=torch.device("cuda", 0))
    return bench, phase, cuda


def test_the_nccl_log_variables_are_set_only_during_the_benchs_init(monkeypatch, clean_nccl_env, tmp_path):
    monkeypatch.setenv("NCCL_DEBUG_SUBSYS", "COLL")  # the user's, unused without NCCL_DEBUG
    bench, phase, cuda = nccl_bench(monkeypatch, tmp_path)
    recorder = fake_dist.install(monkeypatch, cuda)
    bench.join_process_group(bench.context())
    during = recorder.inits[0].env
    assert during["NCCL_DEBUG"] == "INFO"
    assert during["NCCL_DEBUG_FILE"] == phase.capture.pattern and during["NCCL_DEBUG_SUBSYS"] != "COLL"
    assert "NCCL_DEBUG" not in os.environ and "NCCL_DEBUG_FILE" not in os.environ
    assert os.environ["NCCL_DEBUG_SUBSYS"] == "COLL"  # put back, for a sweep's children
    assert [c[0] for c in cuda.calls] == ["set_device", "init_process_group"]
    assert bench.supervisor.entered == ["init_process_group"]


def test_the_users_own_nccl_logging_is_left_as_it_is_during_init(monkeypatch, tmp_path):
    monkeypatch.setenv("NCCL_DEBUG", "INFO")
    monkeypatch.setenv("NCCL_DEBUG_FILE", str(tmp_path / "mine.%p"))
    monkeypatch.delenv("NCCL_DEBUG_SUBSYS", raising=False)
    bench, _, cuda = nccl_bench(monkeypatch, tmp_path)
    recorder = fake_dist.install(monkeypatch, cuda)
    bench.join_process_group(bench.context())
    during = recorder.inits[0].env
    assert during["NCCL_DEBUG_FILE"] == str(tmp_path / "mine.%p") and "NCCL_DEBUG_SUBSYS" not in during


# -- eager or lazy NCCL init -----------------------------------------------------------------------
@pytest.mark.parametrize("splitting", [True, False])
def test_init_says_whether_nccl_started_inside_the_call(monkeypatch, splitting):
    cuda = install(monkeypatch, FakeCuda(count=1))
    fake_dist.install(monkeypatch, cuda, splitting=splitting)
    assert init_process_group(dist.HashStore(), LAUNCH, "nccl", torch.device("cuda", 0), 60.0) is splitting


@pytest.mark.parametrize(
    ("version", "eager"), [((2, 17, 1), False), ((2, 18, 1), True), ((2, 21, 5, "x"), True)]
)
def test_without_torchs_splitting_test_the_nccl_version_decides(monkeypatch, version, eager):
    install(monkeypatch, FakeCuda(count=1, nccl_version=version))
    monkeypatch.setattr(dist.distributed_c10d._world, "_default_pg", None)  # no group to ask
    assert nccl_inits_eagerly(torch.device("cuda", 0)) is eager


def published_note(bench, phase):
    ctx = bench.context()
    bench.join_process_group(ctx)
    phase.run(ctx)  # rank 1: publishes its entry for rank 0
    return json.loads(bench.store.get(f"nccl/{LAUNCH.rank}"))["note"]


def test_lazy_nccl_init_is_named_in_the_nccl_notes(monkeypatch, clean_nccl_env, tmp_path):
    bench, phase, cuda = nccl_bench(monkeypatch, tmp_path)
    fake_dist.install(monkeypatch, cuda, splitting=False)  # NCCL < 2.18: no eager communicator
    note = published_note(bench, phase)
    assert "first collective" in note and "2.18" in note


def test_eager_nccl_init_adds_no_note(monkeypatch, clean_nccl_env, tmp_path):
    bench, phase, cuda = nccl_bench(monkeypatch, tmp_path)
    fake_dist.install(monkeypatch, cuda, splitting=True)
    assert published_note(bench, phase) is None


def test_lazy_init_does_not_matter_when_the_user_logs_nccl(monkeypatch, tmp_path):
    # Their variables stay set for the whole run, so the lazy init logs to their file too.
    monkeypatch.setenv("NCCL_DEBUG", "INFO")
    monkeypatch.setenv("NCCL_DEBUG_FILE", str(tmp_path / "mine.%p"))
    monkeypatch.delenv("NCCL_DEBUG_SUBSYS", raising=False)
    bench, phase, cuda = nccl_bench(monkeypatch, tmp_path)
    fake_dist.install(monkeypatch, cuda, splitting=False)
    assert published_note(bench, phase) is None
