"""report.html: one self-contained page, the verdict and findings first, then the figures and
tables of every section, all drawn from report.json (the page is a view, not a second analysis).

Self-contained and offline: the styles are inline, the figures are inline SVG (matplotlib,
reports/figures), there is no script and no font or image to fetch, and a Content-Security-
Policy forbids the browser any request at all, so the page reads the same from a CI artifact,
a shared folder or a laptop on a plane. Every text from the report is escaped: a log line or a
hostname cannot become markup.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from nccldoctor import __version__
from nccldoctor.atomic import write_atomically
from nccldoctor.errors import SHAPE_ERRORS, UsageError
from nccldoctor.explain.engine import rank_ranges
from nccldoctor.findings import Finding, Severity
from nccldoctor.gate.exclude import exclude_of
from nccldoctor.report import Report
from nccldoctor.reports.figures import RESULTS, NotDrawn, Plot, draw_section, has_section
from nccldoctor.reports.sections import capped, views
from nccldoctor.reports.tables import (
    busbw_footer,
    digest_title,
    findings_digest,
    flagged,
    hostnames,
    probe_tables,
    where,
)
from nccldoctor.reports.terminal import headline, speed_note

FILENAME = "report.html"
STYLE_FILE = Path(__file__).with_name("html.css")
# No request of any kind: inline styles, and images only as data: URIs (matplotlib's rasters).
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# `export NAME=value` in a fix: the line a user pastes before torchrun.
EXPORT = re.compile(r"""\bexport [A-Za-z_][A-Za-z0-9_]*=(?:'[^']*'|"[^"]*"|[^\s;,)]+)""")
SECTION_TITLES = {
    RESULTS: "Bandwidth and latency",
    "logs": "Log diagnosis",
    "preflight": "Preflight",
    "expectations": "Expectations",
    "speed": "Speed",
    "network": "Network",
    "consistency": "Job consistency",
    "nccl": "NCCL",
    "nic_sweep": "Per-NIC sweep",
    "settings_sweep": "Settings sweep",
    "ddp": "DDP reference benchmark",
    "stragglers": "Stragglers and links",
    "health": "Hosts and GPUs",
    "baseline": "Against the baseline",
}
NODES_SHOWN = 64  # rows of the job's node table; report.json lists them all
NODES_OPEN = 16  # beyond, the node table is folded


class HtmlSink:
    @classmethod
    def from_options(cls, options: object) -> HtmlSink | None:
        return cls() if getattr(options, "html", True) else None  # --no-html

    def emit(self, report: Report, out_dir: Path) -> None:
        write_atomically(out_dir / FILENAME, render(report, f"{out_dir / 'report.json'}"))


def write_page(report: Report, path: Path, source: str, command: str) -> None:
    """The page of `report` at `path` (`show --html`, `compare --html`); a path that cannot be
    written is one line naming `command`, exit 2."""
    try:
        write_atomically(path, render(report, source))
    except OSError as exc:
        raise UsageError(f"{command}: cannot write {path}: {exc.strerror or exc}") from None


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render(report: Report, source: str) -> str:
    """The whole page; `source` names what it renders (the report.json, or a comparison)."""
    body = [
        _header(report, source),
        _findings(report),
        _exclude(report),
        _job(report),
        *(_section(report, name) for name in _section_order(report)),
        f"<footer>nccldoctor {e(__version__)} · rendered from {e(source)}</footer>",
    ]
    title = f"nccldoctor {report.verdict.upper()}: {headline(report)}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{e(title)}</title>",
            f"<style>\n{STYLE_FILE.read_text()}</style>",
            "</head>",
            f'<body class="verdict-{e(report.verdict)}">',
            "<main>",
            *[part for part in body if part],
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _header(report: Report, source: str) -> str:
    incomplete = "" if report.complete else '<p class="incomplete">Incomplete run: a partial report.</p>'
    note = speed_note(report).removeprefix("; ")
    return (
        '<header id="verdict">'
        f'<div class="verdict-badge">{e(report.verdict.upper())}</div>'
        f"<div><h1>{e(headline(report))}</h1>"
        f"<p>exit code {report.exit_code} · {len(report.findings)} finding(s) · "
        f"created {e(report.created)}</p>"
        f"{incomplete}"
        + (f'<p class="note">{e(note)}</p>' if note else "")
        + f'<p class="source">This page renders <code>{e(source)}</code>.</p></div>'
        "</header>"
    )


# -- findings -------------------------------------------------------------------------------


def export_lines(finding: Finding) -> list[str]:
    """The `export NAME=value` lines of a finding's fix, to copy as they are."""
    return EXPORT.findall(finding.fix or "")


def _finding_card(finding: Finding, names: dict[int, str]) -> str:
    exports = export_lines(finding)
    copy = (
        '<pre class="copy" title="paste before torchrun">' + e("\n".join(exports)) + "</pre>"
        if exports
        else ""
    )
    evidence = (
        f"<details><summary>evidence</summary><pre>{e(json.dumps(finding.evidence, indent=2, default=str))}"
        "</pre></details>"
        if finding.evidence
        else ""
    )
    severity = e(finding.severity.value)
    return (
        f'<article class="finding {severity}">'
        f'<div class="finding-head"><span class="pill {severity}">{severity}'
        f'</span> <code class="code">{e(finding.code)}</code> <span class="where">{e(where(finding, names))}'
        "</span></div>"
        f"<p>{e(finding.message)}</p>"
        + (f'<p class="fix"><b>Fix:</b> {e(finding.fix)}</p>' if finding.fix else "")
        + copy
        + evidence
        + "</article>"
    )


def _findings(report: Report) -> str:
    if not report.findings:
        return '<section id="findings"><h2>Findings</h2><p class="none">No findings.</p></section>'
    shown, rest = findings_digest(report.findings)
    names = hostnames(report)
    cards = "".join(_finding_card(f, names) for f in shown)
    more = table_html(rest) if rest is not None else ""
    return (
        f'<section id="findings"><h2>{e(digest_title(len(shown), len(report.findings)))}</h2>'
        f'<div class="cards">{cards}</div>{more}</section>'
    )


def _exclude(report: Report) -> str:
    exclude = exclude_of(report)
    if not exclude["hosts"]:
        return ""
    reasons = pd.DataFrame(
        [
            [host, ", ".join(dict.fromkeys(r["code"] for r in exclude["reasons"].get(host, [])))]
            for host in exclude["hosts"]
        ],
        columns=["host", "why"],
    )
    title, reasons = capped("Hosts", reasons)
    return (
        '<section id="exclude"><h2>Exclude from the next job</h2>'
        f'<pre class="copy">{e(exclude["slurm"])}</pre>'
        "<p>Also in exclude.txt, one host per line "
        "(e.g. <code>srun --exclude=$(paste -sd, exclude.txt)</code>).</p>"
        f"<h3>{e(title)}</h3>{table_html(reasons)}</section>"
    )


# -- job ------------------------------------------------------------------------------------


def _job(report: Report) -> str:
    job = report.job
    versions = job.get("versions") or {}
    facts = [
        ("backend", job.get("backend")),
        ("device", job.get("device")),
        ("ranks", job.get("world_size")),
        ("nodes", job.get("nnodes")),
        *((name, value) for name, value in versions.items() if value),
    ]
    listed = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts if v not in (None, ""))
    nodes = job.get("nodes") or []
    table = ""
    if nodes:
        frame = pd.DataFrame(
            [
                {
                    "node": "-" if n.get("node_rank") is None else n["node_rank"],
                    "hostname": n["hostname"],
                    "ranks": rank_ranges(n.get("ranks") or []),
                }
                for n in nodes
            ]
        )
        title, frame = capped("Nodes", frame, NODES_SHOWN)
        table = table_html(frame, *_flags(report))
        # A long list folded: the figures below matter more than 64 lines of hostnames.
        table = (
            f"<details><summary>{e(title)} ({len(nodes):,})</summary>{table}</details>"
            if len(nodes) > NODES_OPEN
            else f"<h3>{e(title)}</h3>{table}"
        )
    return f'<section id="job"><h2>Job</h2><dl class="facts">{listed}</dl>{table}</section>'


# -- sections -------------------------------------------------------------------------------


def _section_order(report: Report) -> list[str]:
    """The results' curves first, then every section the report has, in the views' order."""
    order = [RESULTS] if has_section(report, RESULTS) else []
    order += [v.section for v in views() if v.section in report.sections]
    order += [s for s in SECTION_TITLES if s in report.sections and s not in order]
    return list(dict.fromkeys(order))


def _section(report: Report, name: str) -> str:
    parts = [_figure(drawn) for drawn in draw_section(report, name)]
    flagged = _flags(report)
    for view in views():
        if view.section != name:
            continue
        try:
            tables = view.draw(report)
        except SHAPE_ERRORS as exc:  # an older or hand-edited report: the rest of the page stands
            parts.append(f'<p class="not-drawn">Tables of {e(name)} not drawn: {_why(exc)}</p>')
            continue
        parts += [
            f"<h3>{e(title)}</h3>{table_html(frame, *flagged)}"
            for title, frame in tables
            if frame is not None
        ]
    if name == RESULTS:
        parts.append(_probe_tables(report))
    if not any(parts):
        return ""
    title = SECTION_TITLES.get(name, name.replace("_", " ").capitalize())
    return f'<section id="{e(name)}"><h2>{e(title)}</h2>{"".join(parts)}</section>'


def _why(exc: Exception) -> str:
    return e(f"{type(exc).__name__}: {exc}")


def _figure(drawn: Plot | NotDrawn) -> str:
    if isinstance(drawn, NotDrawn):
        return f'<p class="not-drawn">Figure {e(drawn.key)} not drawn: {e(drawn.reason)}</p>'
    caption = f"<figcaption>{e(drawn.caption)}</figcaption>" if drawn.caption else ""
    return f'<figure id="fig-{e(drawn.key)}">{drawn.svg}{caption}</figure>'


def _probe_tables(report: Report) -> str:
    """nccl-tests' tables, folded: the figures above say it at a glance, these give every number."""
    parts = []
    for probe, frame in probe_tables(report.probe_results).items():
        footer = busbw_footer(report.probe_results, probe)
        parts.append(
            f"<details><summary>{e(probe)}: every size (out-of-place | in-place)</summary>"
            f"{table_html(frame)}<p class='footer'>{e(footer)}</p></details>"
        )
    return "".join(parts)


# -- tables ---------------------------------------------------------------------------------


def _flags(report: Report) -> tuple[dict[int, Severity], dict[int, Severity]]:
    """(node -> worst severity, rank -> worst severity) of the warn and fail findings."""
    return flagged(report.findings, "nodes"), flagged(report.findings, "ranks")


def _leading_int(cell: object) -> int | None:
    """0 from a node cell '0 node0-a1' or 0; None from '-' or 'node 0 -> node 1'."""
    match = re.match(r"\s*(\d+)\b", str(cell))
    return int(match.group(1)) if match else None


def _row_flag(
    row: Iterable[object], columns: list[str], nodes: dict[int, Severity], ranks: dict[int, Severity]
) -> str:
    cells = dict(zip(columns, row, strict=False))
    for column, named in (("rank", ranks), ("node", nodes)):
        if column in cells:
            severity = named.get(_leading_int(cells[column]))  # type: ignore[arg-type]
            if severity:
                return f' class="flag-{severity.value}"'
    return ""


def table_html(
    frame: pd.DataFrame, nodes: dict[int, Severity] | None = None, ranks: dict[int, Severity] | None = None
) -> str:
    """A table, the rows of nodes or ranks a warn or fail finding names marked in its colour."""
    columns = [str(c) for c in frame.columns]
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    rows = []
    for row in frame.itertuples(index=False):
        flag = _row_flag(row, columns, nodes or {}, ranks or {})
        rows.append(f"<tr{flag}>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>")
    body = "".join(rows)
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
