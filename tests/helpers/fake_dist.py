"""A recording fake of `torch.distributed.init_process_group`, for tests without a GPU or peers.

`install(monkeypatch, fake_cuda)` replaces the call; each call is appended to the same `calls`
list as the fake CUDA's set_device (so a test sees their order) with its backend, device_id,
rank, world size and the environment at call time (NCCL reads its log variables then). It
also makes the default group answer torch's own test for eager NCCL init
(`pg._get_backend(device).supports_splitting`), as `splitting` says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class InitCall:
    backend: str | None
    device_id: torch.device | None
    rank: int
    world_size: int
    timeout: Any
    env: dict[str, str] = field(default_factory=dict)  # os.environ during the call


class FakeBackend:
    def __init__(self, splitting: bool) -> None:
        self.supports_splitting = splitting


class FakeGroup:
    """What is asked of the default group after init: its backend for a device."""

    def __init__(self, splitting: bool) -> None:
        self.backend = FakeBackend(splitting)

    def _get_backend(self, device: torch.device) -> FakeBackend:
        return self.backend


@dataclass
class RecordingInit:
    calls: list[tuple] = field(default_factory=list)  # shared with FakeCuda.calls
    splitting: bool = True  # NCCL >= 2.18: torch creates the communicator inside the call
    inits: list[InitCall] = field(default_factory=list)

    def __call__(self, backend: str | None = None, **kwargs: Any) -> None:
        call = InitCall(
            backend=backend,
            device_id=kwargs.get("device_id"),
            rank=kwargs.get("rank", -1),
            world_size=kwargs.get("world_size", -1),
            timeout=kwargs.get("timeout"),
            env=dict(os.environ),
        )
        self.inits.append(call)
        self.calls.append(("init_process_group", call))
        dist.group.WORLD = FakeGroup(self.splitting)


def install(monkeypatch, fake_cuda=None, splitting: bool = True) -> RecordingInit:
    recorder = RecordingInit(calls=fake_cuda.calls if fake_cuda is not None else [], splitting=splitting)
    monkeypatch.setattr(dist, "init_process_group", recorder)
    # dist.group.WORLD reads this; monkeypatch puts the real (None) back after the test.
    monkeypatch.setattr(dist.distributed_c10d._world, "_default_pg", None)
    return recorder
