"""A fake `torch.cuda` surface for tests without GPUs: the few calls nccldoctor makes.

`install(monkeypatch, FakeCuda(count=1))` replaces them on `torch.cuda` (and makes
`torch.distributed.is_nccl_available` say NCCL is built in, as on a CUDA build of torch), so
the code under test runs its GPU branch on a CPU-only machine. Every call that changes
state is appended to `calls` (shared with the recording fake of init_process_group, so a
test can check their order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist


@dataclass
class FakeCuda:
    count: int = 1  # what torch.cuda.device_count() says (after CUDA_VISIBLE_DEVICES)
    capability: tuple[int, int] = (9, 0)
    bf16: bool = True
    nccl: bool = True  # torch built with NCCL
    nccl_version: tuple[int, ...] = (2, 21, 5)
    event_ms: float = 2.0  # what Event.elapsed_time returns (CUDA's unit: milliseconds)
    calls: list[tuple] = field(default_factory=list)
    current: int = 0

    # -- the surface ---------------------------------------------------------------------------
    def is_available(self) -> bool:
        return self.count > 0

    def device_count(self) -> int:
        return self.count

    def set_device(self, device: torch.device | int) -> None:
        index = device if isinstance(device, int) else device.index
        if not 0 <= index < self.count:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index} (count {self.count})")
        self.current = index
        self.calls.append(("set_device", index))

    def current_device(self) -> int:
        return self.current

    def synchronize(self, device: torch.device | int | None = None) -> None:
        self.calls.append(("synchronize",))

    def is_bf16_supported(self, including_emulation: bool = True) -> bool:
        return self.bf16

    def get_device_capability(self, device: torch.device | int | None = None) -> tuple[int, int]:
        return self.capability

    def get_device_name(self, device: torch.device | int | None = None) -> str:
        return "Fake GPU"

    def event_class(self) -> type:
        fake = self

        class Event:
            """torch.cuda.Event: record, synchronize, elapsed_time in milliseconds."""

            def __init__(self, enable_timing: bool = False) -> None:
                self.enable_timing = enable_timing
                self.recorded = False

            def record(self, stream: object = None) -> None:
                self.recorded = True

            def synchronize(self) -> None:
                pass

            def elapsed_time(self, end: Event) -> float:
                if not (self.enable_timing and end.enable_timing):
                    raise RuntimeError("Both events must be created with argument 'enable_timing=True'")
                if not (self.recorded and end.recorded):
                    raise RuntimeError("Both events must be recorded before calculating elapsed time")
                return fake.event_ms

        return Event


class FakeNcclModule:
    """torch.cuda.nccl: only version()."""

    def __init__(self, version: tuple[int, ...]) -> None:
        self._version = version

    def version(self) -> tuple[int, ...]:
        return self._version


def install(monkeypatch, fake: FakeCuda) -> FakeCuda:
    """Put the fake in place of torch.cuda's calls for the test (monkeypatch undoes it)."""
    for name in (
        "is_available",
        "device_count",
        "set_device",
        "current_device",
        "synchronize",
        "is_bf16_supported",
        "get_device_capability",
        "get_device_name",
    ):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    monkeypatch.setattr(torch.cuda, "Event", fake.event_class())
    monkeypatch.setattr(torch.cuda, "nccl", FakeNcclModule(fake.nccl_version), raising=False)
    monkeypatch.setattr(dist, "is_nccl_available", lambda: fake.nccl)
    return fake
