"""How every figure of report.html is drawn and turned into inline SVG (matplotlib, no pyplot).

Figures are matplotlib `Figure` objects built without pyplot: no global figure list, no GUI
backend, nothing to close. Text stays text in the SVG (`svg.fonttype = none`): the page is a
third of the size, searchable, and the browser draws it with its own sans-serif font, so no
font is embedded or fetched. Each figure gets its own id salt, so the ids of several SVGs inlined
in one page never collide, and the same report always gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Iterable

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from nccldoctor.units import format_size, three_digits

# Colours: one meaning each, the same in every figure and in the page's CSS.
FAIL = "#c62828"
WARN = "#ef8f00"
OK = "#3b6ea8"
MUTED = "#9e9e9e"
EXPECTED = "#2e7d32"
SERIES = ("#3b6ea8", "#e07b39", "#4f9d69", "#b5485d", "#7e63b8", "#8c6d31", "#3aa0a8", "#666666")

WIDTH = 9.0  # inches: a full-width figure; the page scales it to the column
_STYLE: dict[str, object] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    # Named once in every <text>: the browser falls back to its own sans-serif without it.
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,  # grid lines behind bars, not across them
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
}
# What matplotlib writes that a page must not carry: the XML prolog and DOCTYPE (it names a
# remote DTD) and the RDF metadata block (remote vocabulary URLs).
_PROLOG = re.compile(r"<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*|<metadata>.*?</metadata>\s*", re.DOTALL)
# Ids matplotlib gives every group ("text_12", "line2d_3"): nothing refers to them, and a
# page of a dozen figures carries thousands. Clip paths and markers ("p1a2b..", "m3c4d..") stay.
_GROUP_IDS = re.compile(
    r' id="(?:figure|axes|patch|line2d|text|xtick|ytick|legend|matplotlib\.axis|'
    r"PolyCollection|FillBetweenPolyCollection|PathCollection|QuadMesh|image|BarContainer|"
    r'LineCollection|Axes)_?[0-9]*"'
)
_NUMBER = re.compile(r"-?[0-9]+\.[0-9]+")
_PATH_DATA = re.compile(r' d="([^"]*)"')
_INDENT = re.compile(r"\n\s+")
_SIZE_ATTRS = re.compile(r'<svg([^>]*?) width="([0-9.]+)pt" height="([0-9.]+)pt"')


def new_figure(
    height: float,
    width: float = WIDTH,
    *,
    left: float = 0.8,
    right: float = 0.25,
    bottom: float = 0.6,
    top: float = 0.45,
    **subplots: object,
) -> tuple[Figure, object]:
    """A figure and its axes (`subplots` as for Figure.subplots), with fixed margins in inches
    around them. Fixed, not matplotlib's constrained layout: that measures every label again
    and doubles the time to draw a page, and our labels' lengths are known. Called inside
    `style()`: matplotlib reads its settings when an artist is made."""
    figure = Figure(figsize=(width, height))
    figure.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height
    )
    return figure, figure.subplots(**subplots)


def _compact(svg: str) -> str:
    """A third smaller, drawn the same: path coordinates to 0.01 pt, no indentation, no ids that
    nothing refers to."""

    def path(match: re.Match[str]) -> str:
        data = _NUMBER.sub(lambda n: f"{float(n.group(0)):.2f}".rstrip("0").rstrip("."), match.group(1))
        return f' d="{" ".join(data.split())}"'

    return _INDENT.sub("\n", _GROUP_IDS.sub("", _PATH_DATA.sub(path, svg)))


def style() -> contextlib.AbstractContextManager:
    """The figures' look, in force while a figure is built."""
    return matplotlib.rc_context(_STYLE)


def to_svg(figure: Figure, key: str) -> str:
    """The figure as an <svg> element for inlining: no prolog, no metadata, no fixed size (it
    scales to the page's column, never above its drawn width), ids salted with `key`."""
    buffer = io.StringIO()
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": f"nccldoctor-{key}"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = _compact(_PROLOG.sub("", buffer.getvalue()))
    return _SIZE_ATTRS.sub(
        lambda m: (
            f'<svg{m.group(1)} width="100%" style="max-width:{float(m.group(2)):.0f}pt" '
            f'role="img" aria-label="{key}"'
        ),
        svg,
        count=1,
    )


def _size_label(value: float, _position: object = None) -> str:
    return format_size(round(value)) if value >= 1 and float(value).is_integer() else ""


def size_axis(ax: Axes, sizes: Iterable[float]) -> None:
    """x: message size in bytes on a log2 axis, ticks at every power of 4 (8, 32, 128, ... 1G),
    written as the -b/-e flags take them."""
    sizes = [s for s in sizes if s > 0]
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(LogLocator(base=4, numticks=20))
    ax.xaxis.set_major_formatter(FuncFormatter(_size_label))
    # No minor ticks: on log axes they are dozens of invisible labels matplotlib still measures
    # (seconds per figure) and writes into the SVG.
    ax.xaxis.set_minor_locator(NullLocator())
    if sizes:
        ax.set_xlim(min(sizes) / 1.4, max(sizes) * 1.4)
    ax.set_xlabel("message size (bytes)")


class _LogTicks(LogLocator):
    """Powers of ten; 1, 2 and 5 times them when the axis spans two decades or less, so a curve
    within one decade still gets labelled ticks."""

    def tick_values(self, vmin: float, vmax: float):
        narrow = vmin > 0 and vmax / vmin <= 100
        self.set_params(subs=(1.0, 2.0, 5.0) if narrow else (1.0,))
        return super().tick_values(vmin, vmax)


def log_y(ax: Axes, label: str) -> None:
    """A log y axis with plain numbers (0.001, 0.1, 10), not 10^-3."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(_LogTicks(base=10, numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: three_digits(v) if v > 0 else ""))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylabel(label)


def width_for(items: int, per_item: float = 0.3) -> float:
    """A figure's width for `items` bars: narrow for a few (no slabs across the page), WIDTH at most."""
    return min(WIDTH, max(5.0, 2.5 + per_item * items))


def headroom(ax: Axes, factor: float = 1.3) -> None:
    """Room above the highest bar for the legend (linear y axes starting at 0)."""
    bottom, top = ax.get_ylim()
    ax.set_ylim(bottom, top * factor)


def positive(values: Iterable[float | None]) -> bool:
    return any(v is not None and math.isfinite(v) and v > 0 for v in values)


def note(ax: Axes, text: str) -> None:
    """Text in place of a drawing (nothing to plot), centred in the axes."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color=MUTED)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
