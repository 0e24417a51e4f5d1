"""exclude.txt: the hosts to keep out of the next job, one hostname per line.

An empty file when there are none, so a script can always read it
(`srun --exclude=$(paste -sd, exclude.txt)`). Which findings count: nccldoctor/gate/exclude.py.
"""

from __future__ import annotations

from pathlib import Path

from nccldoctor.atomic import write_atomically
from nccldoctor.gate.exclude import exclude_of
from nccldoctor.report import Report

FILENAME = "exclude.txt"


class ExcludeListSink:
    @classmethod
    def from_options(cls, options: object) -> ExcludeListSink:
        return cls()

    def emit(self, report: Report, out_dir: Path) -> None:
        hosts = exclude_of(report)["hosts"]
        write_atomically(out_dir / FILENAME, "".join(f"{host}\n" for host in hosts))


def exclude_line(report: Report, quote: str = "") -> str | None:
    """The line the terminal and report.md show after the findings, when there are hosts to exclude:
    'exclude from the next job: gpu[003,017] (gpu003: straggler_node; gpu017: wrong_data)';
    `quote` goes around the hostlist (Markdown: a backtick, so brackets stay brackets)."""
    exclude = exclude_of(report)
    if not exclude["hosts"]:
        return None
    why = "; ".join(
        f"{host}: {', '.join(dict.fromkeys(r['code'] for r in exclude['reasons'].get(host, [])))}"
        for host in exclude["hosts"]
    )
    return f"exclude from the next job: {quote}{exclude['slurm']}{quote} ({why})"
