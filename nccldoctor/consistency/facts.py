"""What one node is running: versions, ranks and GPUs, the variables that change communication.

Read by each node's leader (and by preflight for its own node). Versions come from the
installed distributions (importlib.metadata), torch's own build information and NVML, never by
importing the packages asked about (`--check-package transformers` must not import it).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import platform
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nccldoctor.environment import PER_RANK, is_secret
from nccldoctor.gpuhealth import Gpus
from nccldoctor.redact import DIGEST_PREFIX, redact_text

# Variables that change how ranks talk or compute: one node with another value is a classic
# cause of hangs (NCCL_SOCKET_IFNAME, NCCL_IB_HCA) and of silent divergence (NCCL_ALGO, TF32).
COMPARED_PREFIXES = ("NCCL_", "GLOO_", "TORCH_", "PYTORCH_", "CUDA_", "UCX_", "FI_", "NVSHMEM_")
COMPARED_NAMES = frozenset({"OMP_NUM_THREADS"})
MASKED = DIGEST_PREFIX  # + a digest: secret values are compared, never shown


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
    NVIDIA driver, and each named package ("package:NAME"). Torch is not imported for it
    (preflight stays fast): its build information is read from its version.py."""
    build = torch_build()
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": build.get("__version__") or distribution_version("torch"),
        "cuda": build.get("cuda"),
        "nccl": nccl_version(),
        "nccldoctor": distribution_version("nccldoctor"),
        "driver": driver,
    }
    for name in packages:
        versions[f"package:{name}"] = distribution_version(name)
    return versions


_ASSIGNED = re.compile(r"^(__version__|cuda|hip)\s*(?::[^=]*)?=\s*'([^']*)'", re.MULTILINE)


def torch_build() -> dict[str, str]:
    """torch/version.py's `__version__` and `cuda` (written when the wheel was built)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return {}
    for location in spec.submodule_search_locations:
        try:
            text = (Path(location) / "version.py").read_text()
        except OSError:
            continue
        return dict(_ASSIGNED.findall(text))
    return {}


def nccl_version() -> str | None:
    """The NCCL torch uses: asked of torch when the bench has loaded it (no CUDA context is
    created), else the version of the NCCL wheel pip installed with torch; None without NCCL."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            found = torch.cuda.nccl.version() if torch.distributed.is_nccl_available() else None
        except (RuntimeError, AttributeError):
            found = None
        if found is not None:
            return ".".join(map(str, found)) if isinstance(found, tuple) else str(found)
        return None
    wheels = [d.metadata["Name"] for d in importlib.metadata.distributions() if _is_nccl_wheel(d)]
    return distribution_version(wheels[0]) if wheels else None


def _is_nccl_wheel(dist: importlib.metadata.Distribution) -> bool:
    return (dist.metadata["Name"] or "").lower().startswith("nvidia-nccl-cu")


def distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def compared_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables compared across nodes; a secret-looking one as a digest of its value."""
    return {
        name: _digest(value) if is_secret(name) else _without_credentials(value)
        for name, value in sorted(environ.items())
        if (name in COMPARED_NAMES or name.startswith(COMPARED_PREFIXES)) and name not in PER_RANK
    }


def _digest(value: str) -> str:
    return f"{MASKED}{hashlib.sha256(value.encode()).hexdigest()[:16]}"


def _without_credentials(value: str) -> str:
    """A value with a credential inside (https://user:token@host/...) as its redacted text and
    a digest of the whole: nodes whose tokens differ still differ, and no token is shown."""
    redacted = redact_text(value)
    return value if redacted == value else f"{redacted} ({_digest(value)})"


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
