"""The probe interface and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nccldoctor.config import CollectiveOptions
from nccldoctor.findings import Finding
from nccldoctor.runtime import Job


@dataclass
class ProbeContext:
    """What a probe may use: the job, the config, and `step` to mark progress.

    `step(label)` tells the supervisor (so a hang names the step) and the progress display.
    """

    job: Job
    config: CollectiveOptions
    step: Callable[[str], None]


@dataclass
class ProbeResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


class Probe(ABC):
    name: ClassVar[str]

    def __init__(self, config: CollectiveOptions) -> None:
        self.config = config

    @abstractmethod
    def planned_steps(self, job: Job) -> int:
        """How many times run() will call ctx.step (for the progress bar)."""

    @abstractmethod
    def run(self, ctx: ProbeContext) -> ProbeResult:
        """Measure on every rank. Every rank returns the same rows and findings."""


REGISTRY: dict[str, type[Probe]] = {}


def register(cls: type[Probe]) -> type[Probe]:
    REGISTRY[cls.name] = cls
    return cls
