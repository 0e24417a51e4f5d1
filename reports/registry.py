"""Functions registered per report section by the modules of one package: the section views
(reports/sections) and report.html's figures (reports/figures) are both kept this way.

A module registers with `@registry("section", order=N)`; `registry.entries()` imports every
module of the package once, then lists what they registered in reading order.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class Entry(Generic[F]):
    section: str  # the report.json key it draws
    order: int  # reading order among the sections (lower first)
    draw: F


class Registry(Generic[F]):
    def __init__(self, package: str, path: Iterable[str]) -> None:
        self._package, self._path = package, list(path)
        self._entries: list[Entry[F]] = []
        self._loaded = False

    def __call__(self, section: str, order: int) -> Callable[[F], F]:
        """The decorator: register `draw` for reports that have `section`."""

        def register(draw: F) -> F:
            self._entries.append(Entry(section, order, draw))
            return draw

        return register

    def entries(self) -> list[Entry[F]]:
        if not self._loaded:
            for module in pkgutil.iter_modules(self._path):
                importlib.import_module(f"{self._package}.{module.name}")
            self._loaded = True
        return sorted(self._entries, key=lambda e: (e.order, e.section))
