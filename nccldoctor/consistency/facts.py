"""What one node is running: versions, ranks and GPUs, the variables that change communication.

Read by each node's leader (and by preflight for its own node). Versions come from the
installed distributions (importlib.metadata), torch's own build information and NVML, never by
importing the packages asked about (`--check-package transformers` must not import it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from nccldoctor.environment import PER_RANK, is_secret
from nccldoctor.gpuhealth import Gpus

# Variables that change how ranks talk or compute: one node with another value is a classic
# cause of hangs (NCCL_SOCKET_IFNAME, NCCL_IB_HCA) and of silent divergence (NCCL_ALGO, TF32).
COMPARED_PREFIXES = ("NCCL_", "GLOO_", "TORCH_", "PYTORCH_", "CUDA_", "UCX_", "FI_", "NVSHMEM_")
COMPARED_NAMES = frozenset({"OMP_NUM_THREADS"})
MASKED = "masked:"  # + a digest: secret values are compared, never shown


@dataclass
class NodeFacts:
    node: int
    hostname: str
    ranks: int  # the ranks the launcher started on this node (LOCAL_WORLD_SIZE)
    gpus_visible: int  # NVML's GPUs left visible by CUDA_VISIBLE_DEVICES; 0 without a driver
    gpus_physical: int
    cuda_visible_devices: str | None
    versions: dict[str, str | None]  # component -> version; None: not installed / not available
    env: dict[str, str]  # the compared variables (secret ones as a digest)
    code: list[dict[str, Any]] = field(default_factory=list)  # per --code DIR (trees.code_digest)
    paths: list[dict[str, Any]] = field(default_factory=list)  # per --check-path (trees.path_summary)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeFacts:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def read_versions(packages: list[str], driver: str | None) -> dict[str, str | None]:
    """python, torch, CUDA runtime and NCCL (as this torch was built with), nccldoctor, the
    NVIDIA driver, and each named package ("package:NAME")."""
    import torch  # already loaded in the bench; its build information is the point

    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "nccl": nccl_version(),
        "nccldoctor": distribution_version("nccldoctor"),
        "driver": driver,
    }
    for name in packages:
        versions[f"package:{name}"] = distribution_version(name)
    return versions


def nccl_version() -> str | None:
    """The NCCL this torch links (no CUDA context is created); None on builds without NCCL."""
    import torch
    import torch.distributed as dist

    if not dist.is_nccl_available():
        return None
    try:
        found = torch.cuda.nccl.version()
    except (RuntimeError, AttributeError):
        return None
    return ".".join(map(str, found)) if isinstance(found, tuple) else str(found)


def distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def compared_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables compared across nodes; a secret-looking one as a digest of its value."""
    return {
        name: f"{MASKED}{hashlib.sha256(value.encode()).hexdigest()[:16]}" if is_secret(name) else value
        for name, value in sorted(environ.items())
        if (name in COMPARED_NAMES or name.startswith(COMPARED_PREFIXES)) and name not in PER_RANK
    }


def collect_facts(
    node: int,
    hostname: str,
    ranks: int,
    gpus: Gpus,
    packages: list[str],
    environ: Mapping[str, str],
) -> NodeFacts:
    return NodeFacts(
        node=node,
        hostname=hostname,
        ranks=ranks,
        gpus_visible=gpus.visible,
        gpus_physical=gpus.physical,
        cuda_visible_devices=gpus.cuda_visible_devices,
        versions=read_versions(packages, gpus.driver_version),
        env=compared_env(environ),
    )
