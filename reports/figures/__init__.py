"""Figures for report.html, drawn from report.json's numbers only (the page is a view of the
report, not a second analysis).

Like the section views (reports.sections), each module here registers drawers with
`@figure("section", order=N)`: `draw(report) -> [Plot, ...]`, called for reports that have that
section ("results" stands for the measured rows). Drawers run inside the figures' style; a
drawer that meets a report it cannot read (an older or hand-edited report.json) costs only its
own figures: the page shows one line saying which and why, and everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nccldoctor.errors import SHAPE_ERRORS
from nccldoctor.report import Report
from nccldoctor.reports.registry import Entry, Registry

RESULTS = "results"  # the pseudo-section of the measured rows (report.json's results[])
# The sections that have figures. matplotlib loads only for a report that has one of them:
# a preflight or explain page, tables only, costs milliseconds, not matplotlib's import.
FIGURE_SECTIONS = frozenset({RESULTS, "stragglers", "ddp", "nic_sweep", "settings_sweep", "baseline"})


@dataclass(frozen=True)
class Plot:
    key: str  # unique within a page: the SVG ids' salt and the figure's anchor
    title: str
    svg: str  # an inline <svg> element
    caption: str = ""  # how to read it: what the marks, bands and lines are


@dataclass(frozen=True)
class NotDrawn:
    key: str
    reason: str


Drawn = Plot | NotDrawn
DrawFn = Callable[[Report], list[Plot]]


Drawer = Entry[DrawFn]
# `@figure("section", order=N)` registers `draw(report) -> [Plot, ...]` for reports that have
# that section.
figure: Registry[DrawFn] = Registry(__name__, __path__)


def drawers() -> list[Drawer]:
    return figure.entries()


def has_section(report: Report, section: str) -> bool:
    if section == RESULTS:
        return bool(report.probe_results)
    return bool(report.sections.get(section))


def draw_section(report: Report, section: str) -> list[Drawn]:
    """Every figure of one section, in order; a drawer that fails becomes a NotDrawn line."""
    if section not in FIGURE_SECTIONS:
        return []
    from nccldoctor.reports.figures.canvas import style

    drawn: list[Drawn] = []
    for drawer in drawers():
        if drawer.section != section:
            continue
        try:
            with style():
                drawn += drawer.draw(report)
        except SHAPE_ERRORS as exc:
            drawn.append(NotDrawn(drawer.draw.__name__, f"{type(exc).__name__}: {exc}"))
    return drawn


def sections_drawn() -> list[str]:
    """The sections that have figures, in drawing order (each once)."""
    return list(dict.fromkeys(d.section for d in drawers()))


def plot(key: str, title: str, fig: object, caption: str = "") -> Plot:
    from nccldoctor.reports.figures.canvas import to_svg

    return Plot(key=key, title=title, svg=to_svg(fig, key), caption=caption)
