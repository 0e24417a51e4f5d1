"""The collectives' registry: each collective module registers its probe class by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nccldoctor.probes.collective import CollectiveProbe

REGISTRY: dict[str, type[CollectiveProbe]] = {}


def register(cls: type[CollectiveProbe]) -> type[CollectiveProbe]:
    REGISTRY[cls.name] = cls
    return cls
