"""Checkpoint round trip (`--ckpt-dir DIR`): can every rank read what every other rank wrote?

A sharded checkpoint only loads when every rank sees every shard. Here every rank writes its
shard of the DDP benchmark's model (parameters dealt out so that the shards weigh about the
same) in the layout of a sharded checkpoint: DIR/nccldoctor-ckpt-<id>/shard-<rank>.pt, then
rank 0 writes manifest.json (every shard's name, bytes and checksum) and, last, COMPLETE.
Then every rank looks for the manifest, the marker and every other rank's shard, and reads
them back.
- A rank that cannot see them: `fs_inconsistent` (DIR is not one shared filesystem:
  node-local disks give each node only its own shards).
- A rank that cannot write, or reads a shard that is not what was written: `ckpt_failed`.
Write and read throughput per rank go to the report. Everything written is removed
afterwards, on every node, so node-local copies go too.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from nccldoctor.findings import Finding, make_finding
from nccldoctor.runtime import Job, gather_objects

MANIFEST = "manifest.json"
COMPLETE = "COMPLETE"


def shard_name(rank: int) -> str:
    return f"shard-{rank:05d}.pt"


def owners(model: torch.nn.Module, world: int) -> dict[str, int]:
    """Parameter name -> the rank that saves it: largest first to the lightest rank, so the
    shards weigh about the same (as a sharded optimizer's would). The same on every rank."""
    load = [0] * world
    owner = {}
    named = sorted(model.named_parameters(), key=lambda item: -item[1].numel())
    for name, parameter in named:
        rank = load.index(min(load))
        owner[name] = rank
        load[rank] += parameter.numel() * parameter.element_size()
    return owner


def my_shard(model: torch.nn.Module, rank: int, world: int) -> dict[str, torch.Tensor]:
    owner = owners(model, world)
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if owner[name] == rank}


def checksum(shard: dict[str, torch.Tensor]) -> float:
    return float(sum(t.double().sum() for t in shard.values())) if shard else 0.0


def _write_durably(path: Path, write) -> None:
    with open(path, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())


def _shared_id(job: Job) -> str:
    holder = [uuid.uuid4().hex[:12] if job.rank == 0 else None]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def round_trip(model: torch.nn.Module, root: Path, job: Job) -> list[dict[str, Any]]:
    """Every rank: write, publish, look, read, clean up. Returns every rank's record."""
    directory = root / f"nccldoctor-ckpt-{_shared_id(job)}"
    written = write_shard(model, directory, job)
    shards = gather_objects(written)
    dist.barrier()
    holder = [write_manifest(directory, shards) if job.rank == 0 else None]
    dist.broadcast_object_list(holder, src=0)  # only files that were written can be missed
    manifest_error = holder[0]
    seen = read_back(directory, shards, job.rank, manifest_written=manifest_error is None)
    if job.rank == 0 and manifest_error:
        written = written | {"write_error": written["write_error"] or f"manifest: {manifest_error}"}
    records = gather_objects(written | seen)
    dist.barrier()
    clean_up(directory, job)
    return records


def write_shard(model: torch.nn.Module, directory: Path, job: Job) -> dict[str, Any]:
    shard = my_shard(model, job.rank, job.world_size)
    record: dict[str, Any] = {"rank": job.rank, "file": shard_name(job.rank), "checksum": checksum(shard)}
    start = time.perf_counter()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_durably(directory / record["file"], lambda handle: torch.save(shard, handle))
    except OSError as error:
        return record | {"bytes": 0, "write_s": None, "write_error": f"{type(error).__name__}: {error}"}
    size = (directory / record["file"]).stat().st_size
    return record | {"bytes": size, "write_s": time.perf_counter() - start, "write_error": None}


def write_manifest(directory: Path, shards: list[dict[str, Any]]) -> str | None:
    """Rank 0, once every shard is written: the manifest, then the marker, last. None when
    both were written, else why not."""
    manifest = {"shards": [{k: s[k] for k in ("rank", "file", "bytes", "checksum")} for s in shards]}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_durably(directory / MANIFEST, lambda h: h.write(json.dumps(manifest, indent=1).encode()))
        _write_durably(directory / COMPLETE, lambda h: h.write(b"ok\n"))
    except OSError as error:
        return f"{type(error).__name__}: {error}"
    return None


def read_back(
    directory: Path, shards: list[dict[str, Any]], rank: int, manifest_written: bool
) -> dict[str, Any]:
    """What this rank can see of the others' work, and how fast it reads it."""
    markers = (MANIFEST, COMPLETE) if manifest_written and rank != 0 else ()
    missing = [name for name in markers if not (directory / name).exists()]
    corrupt, read_bytes, start = [], 0, time.perf_counter()
    for shard in shards:
        if shard["rank"] == rank or shard["write_error"]:
            continue
        path = directory / shard["file"]
        if not path.exists():
            missing.append(shard["file"])
            continue
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            read_bytes += path.stat().st_size
            if checksum(loaded) != shard["checksum"]:
                corrupt.append(shard["file"])
        except Exception as error:  # a torn or foreign file: say which
            corrupt.append(f"{shard['file']} ({type(error).__name__})")
    seconds = time.perf_counter() - start
    return {"missing": missing, "corrupt": corrupt, "read_bytes": read_bytes, "read_s": seconds}


def clean_up(directory: Path, job: Job) -> None:
    (directory / shard_name(job.rank)).unlink(missing_ok=True)
    dist.barrier()
    if job.launch.local_rank == 0:  # each node: a node-local DIR holds that node's copies only
        shutil.rmtree(directory, ignore_errors=True)


def judge_checkpoint(
    records: list[dict[str, Any]], root: Path, job: Job
) -> tuple[list[Finding], dict[str, Any]]:
    """Rank 0: fs_inconsistent / ckpt_failed, and the report's `checkpoint` part."""
    findings = []
    blind = [r["rank"] for r in records if r["missing"]]
    if blind:
        unseen = sorted({name for r in records for name in r["missing"]})
        writers = sorted({r["rank"] for r in records if r["file"] in unseen})
        findings.append(
            make_finding(
                "fs_inconsistent",
                f"rank(s) {_ranks(blind)} (node(s) {_ranks(job.nodes_of(blind))}) cannot see "
                "checkpoint files "
                f"other ranks wrote under {root}: {', '.join(unseen[:6])}{' ...' if len(unseen) > 6 else ''}"
                + (
                    f" (written by rank(s) {_ranks(writers)}, node(s) {_ranks(job.nodes_of(writers))})"
                    if writers
                    else ""
                )
                + "; a sharded checkpoint saved there could not be loaded",
                ranks=blind,
                nodes=job.nodes_of(blind),
                evidence={
                    "dir": str(root),
                    "missing": {r["rank"]: r["missing"] for r in records if r["missing"]},
                },
            )
        )
    failed = [r for r in records if r["write_error"] or r["corrupt"]]
    if failed:
        ranks = [r["rank"] for r in failed]
        what = "; ".join(
            f"rank {r['rank']}: "
            + (
                f"could not write ({r['write_error']})"
                if r["write_error"]
                else f"read back wrong: {', '.join(r['corrupt'])}"
            )
            for r in failed[:4]
        )
        findings.append(
            make_finding(
                "ckpt_failed",
                f"checkpoint round trip under {root} failed: {what}",
                ranks=ranks,
                nodes=job.nodes_of(ranks),
                evidence={"errors": {r["rank"]: r["write_error"] or r["corrupt"] for r in failed}},
            )
        )
    ranks = [
        {
            "rank": r["rank"],
            "node": job.node_of(r["rank"]),
            "bytes": r["bytes"],
            "write_mb_s": r["bytes"] / r["write_s"] / 1e6 if r["write_s"] else None,
            "read_mb_s": r["read_bytes"] / r["read_s"] / 1e6 if r["read_bytes"] and r["read_s"] else None,
            "missing": r["missing"],
            "corrupt": r["corrupt"],
            "write_error": r["write_error"],
        }
        for r in records
    ]
    return findings, {"dir": str(root), "ranks": ranks, "ok": not findings}


def _ranks(values: list[int]) -> str:
    return ", ".join(map(str, values))
