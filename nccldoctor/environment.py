"""The environment variables that shape collective communication, with secrets masked
(nccldoctor.redact: a secret's name masks its value whole, a credential inside a value is cut out)."""

from __future__ import annotations

import os

from nccldoctor.redact import MASK, is_secret, mask_value

__all__ = ["MASK", "PER_RANK", "differences_by_node", "is_secret", "relevant_env"]

_PREFIXES = (
    "NCCL_",
    "GLOO_",
    "TORCH_",
    "PYTORCH_",
    "CUDA_",
    "NVIDIA_",
    "UCX_",
    "FI_",
    "OMP_",
    "MASTER_",
    "TORCHELASTIC_",
    "NVSHMEM_",
    "MLX5_",
    "IBV_",
)
# Set per rank by the launcher: they differ between ranks by design, not by mistake.
PER_RANK = frozenset(
    {"RANK", "LOCAL_RANK", "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_ERROR_FILE", "CUDA_VISIBLE_DEVICES"}
)
_NAMES = (
    frozenset({"WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE", "LD_LIBRARY_PATH"})
    | PER_RANK
)


def relevant_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """NCCL_*, GLOO_*, TORCH_*, CUDA_*, ... from `environ`: values of secret-looking names
    masked whole, credentials inside the others masked (TORCH_HOME=https://user:token@host)."""
    environ = dict(os.environ if environ is None else environ)
    return {
        name: mask_value(name, value)
        for name, value in sorted(environ.items())
        if name in _NAMES or name.startswith(_PREFIXES)
    }


def differences_by_node(env_by_node: dict[int, dict[str, str]]) -> dict[str, dict[int, str | None]]:
    """Variables whose value is not the same on every node (unset shows as None)."""
    names = sorted({n for env in env_by_node.values() for n in env} - PER_RANK)
    return {
        name: {node: env.get(name) for node, env in sorted(env_by_node.items())}
        for name in names
        if len({env.get(name) for env in env_by_node.values()}) > 1
    }
