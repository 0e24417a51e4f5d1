"""The one in-memory report every sink renders, and how it is assembled."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from nccldoctor import __version__
from nccldoctor.environment import differences_by_node
from nccldoctor.findings import Finding, exit_code, verdict
from nccldoctor.rows import Row, rows_frame

if TYPE_CHECKING:  # torch loads in seconds: preflight and `show` must not pay for it
    import pandas as pd  # nor the ranks that write no report (results_frame loads it)

    from nccldoctor.runtime import Job, RankInfo

SCHEMA_VERSION = 1
# The report's own top-level keys; every other top-level key is a phase's section.
CORE_KEYS = frozenset(
    {"schema_version", "tool", "created", "verdict", "exit_code", "complete", "strict"}
    | {"job", "environment", "results", "findings"}
)

# What Report.from_dict reads, in words for a file that lacks some: `nccldoctor show` names them.
REQUIRED_KEYS = {
    "job": "the ranks, nodes and backend",
    "environment": "the variables the run saw",
    "results": "the measured rows",
    "findings": "what was found",
    "complete": "whether the run finished",
    "created": "when the report was written",
}


def missing_keys(data: dict[str, Any]) -> str | None:
    """'job (the ranks, nodes and backend) and created (...)' for the keys data lacks, or None."""
    missing = [f"{key} ({meaning})" for key, meaning in REQUIRED_KEYS.items() if key not in data]
    if not missing:
        return None
    return missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"


class Sink(Protocol):
    """An output format (nccldoctor.reports): built for a run's output options, or None when
    the run did not ask for it; then handed the report and the report folder."""

    @classmethod
    def from_options(cls, options: Any) -> Sink | None: ...

    def emit(self, report: Report, out_dir: Path) -> None: ...


def main_rows(rows: list[Row]) -> list[Row]:
    """The run's own rows, without those a sweep measured under other settings."""
    return [row for row in rows if row.sweep is None]


@dataclass
class Report:
    job: dict[str, Any]
    environment: dict[str, Any]
    results: list[Row]
    findings: list[Finding]
    complete: bool = True
    strict: bool = False
    sections: dict[str, Any] = field(default_factory=dict)  # e.g. "network"
    created: str = field(
        default_factory=lambda: datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def verdict(self) -> str:
        return verdict(self.findings, self.complete)

    @property
    def exit_code(self) -> int:
        return exit_code(self.verdict, self.strict)

    def results_frame(self) -> pd.DataFrame:
        return rows_frame(self.results)

    @property
    def probe_results(self) -> list[Row]:
        """The main run's rows, without those a sweep measured under other settings."""
        return main_rows(self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "nccldoctor", "version": __version__},
            "created": self.created,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "complete": self.complete,
            "strict": self.strict,
            "job": self.job,
            "environment": self.environment,
            "results": [row.to_dict() for row in self.results],
            "findings": [f.to_dict() for f in self.findings],
            **self.sections,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            job=data["job"],
            environment=data["environment"],
            results=[Row.from_dict(row) for row in data["results"]],
            findings=[Finding.from_dict(f) for f in data["findings"]],
            complete=data["complete"],
            strict=data.get("strict", False),
            sections={key: value for key, value in data.items() if key not in CORE_KEYS},
            created=data["created"],
        )


def versions() -> dict[str, str | None]:
    import torch

    nccl = None
    if torch.cuda.is_available():
        with_nccl = getattr(torch.cuda, "nccl", None)
        if with_nccl is not None:
            nccl = ".".join(map(str, with_nccl.version()))
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "nccl": nccl}


def describe_device(job: Job) -> str:
    import torch

    if job.device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(job.device)})"
    return "cpu"


def describe_job(job: Job) -> dict[str, Any]:
    """The `job` section: sizes, backend, versions and the nodes with their ranks."""
    return {
        "world_size": job.world_size,
        "nnodes": job.launch.nnodes,
        "backend": job.backend,
        "device": describe_device(job),
        "versions": versions(),
        "nodes": nodes_table(job.ranks),
    }


def nodes_table(ranks: list[RankInfo]) -> list[dict[str, Any]]:
    nodes: dict[int, dict[str, Any]] = {}
    for info in sorted(ranks, key=lambda i: i.rank):
        node = nodes.setdefault(
            info.node_rank, {"node_rank": info.node_rank, "hostname": info.hostname, "ranks": []}
        )
        node["ranks"].append(info.rank)
    return [nodes[n] for n in sorted(nodes)]


def describe_environment(ranks: list[RankInfo]) -> dict[str, Any]:
    """Rank 0's relevant variables, plus any that differ between nodes (a classic trap)."""
    if not ranks:
        return {"variables": {}, "differs_by_node": {}}
    first_per_node = {}
    for info in ranks:
        first_per_node.setdefault(info.node_rank, info.env)
    return {"variables": ranks[0].env, "differs_by_node": differences_by_node(first_per_node)}
