"""Joining the job without a GPU: backend and device per rank (fake torch.cuda), launchers."""

from __future__ import annotations

import pytest
import torch
from helpers.fake_cuda import FakeCuda, install

from nccldoctor.errors import UsageError
from nccldoctor.runtime import choose_backend

NODE = "node 1 (gpu-b)"


@pytest.mark.parametrize("local_rank", [0, 1, 3])
def test_one_visible_gpu_per_process_is_cuda_0_on_every_rank(monkeypatch, local_rank):
    # Slurm --gpus-per-task=1 and some Kubernetes device plugins: every rank sees one GPU.
    install(monkeypatch, FakeCuda(count=1))
    env = {"CUDA_VISIBLE_DEVICES": str(local_rank)}
    for requested in ("auto", "nccl"):
        assert choose_backend(requested, local_rank, env=env, node=NODE) == ("nccl", torch.device("cuda", 0))


def test_all_gpus_visible_is_cuda_local_rank(monkeypatch):
    install(monkeypatch, FakeCuda(count=4))
    for local_rank in range(4):
        backend, device = choose_backend("auto", local_rank, env={}, node=NODE)
        assert backend == "nccl" and device == torch.device("cuda", local_rank)


@pytest.mark.parametrize("requested", ["auto", "nccl"])
def test_a_rank_without_a_gpu_is_named_with_its_node_and_what_it_sees(monkeypatch, requested):
    # 2 GPUs for 4 ranks: auto used to put ranks 2 and 3 on Gloo, and the job hung.
    install(monkeypatch, FakeCuda(count=2))
    with pytest.raises(UsageError) as error:
        choose_backend(requested, 2, env={"CUDA_VISIBLE_DEVICES": "0,1"}, node=NODE)
    message = str(error.value)
    assert NODE in message and "LOCAL_RANK 2" in message
    assert "2 visible" in message and "CUDA_VISIBLE_DEVICES=0,1" in message


def test_without_cuda_auto_is_gloo_and_nccl_is_refused(monkeypatch):
    install(monkeypatch, FakeCuda(count=0))
    assert choose_backend("auto", 3, env={}, node=NODE) == ("gloo", torch.device("cpu"))
    assert choose_backend("gloo", 3, env={}, node=NODE) == ("gloo", torch.device("cpu"))
    with pytest.raises(UsageError, match="needs CUDA and NCCL"):
        choose_backend("nccl", 0, env={}, node=NODE)


def test_gloo_is_kept_when_asked_for_even_with_gpus(monkeypatch):
    install(monkeypatch, FakeCuda(count=8))
    assert choose_backend("gloo", 9, env={}, node=NODE) == ("gloo", torch.device("cpu"))


def test_the_fake_cuda_events_time_in_milliseconds(monkeypatch):
    from nccldoctor.timing import Clock

    install(monkeypatch, FakeCuda(count=1, event_ms=250.0))
    clock = Clock(torch.device("cuda", 0))
    start, end = clock.mark(), clock.mark()
    assert clock.seconds(start, end) == 0.25
