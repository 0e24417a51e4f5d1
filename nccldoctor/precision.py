"""Which low-precision dtype a GPU computes in: one rule for the compute probe and the DDP benchmark.

bf16 is the default on a GPU, but pre-Ampere GPUs (V100, T4) have no bf16 tensor cores: torch
emulates it there (slowly), and `torch.cuda.is_bf16_supported()` says True unless asked about
native support only. Those GPUs get fp16, which they do run on tensor cores.
"""

from __future__ import annotations

import inspect

import torch


def gpu_has_native_bf16() -> bool:
    """bf16 in hardware on the current CUDA device (emulation does not count)."""
    check = torch.cuda.is_bf16_supported
    try:
        emulation_flag = "including_emulation" in inspect.signature(check).parameters
    except (TypeError, ValueError):  # a wrapped or monkeypatched function without a signature
        emulation_flag = False
    return bool(check(including_emulation=False) if emulation_flag else check())


def compute_dtype(device: torch.device) -> torch.dtype:
    """The dtype of the GPU matmul and the DDP benchmark's autocast; float32 on a CPU."""
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if gpu_has_native_bf16() else torch.float16


def dtype_name(dtype: torch.dtype) -> str:
    """'bfloat16', 'float16', 'float32': the names the report uses (as --dtype does)."""
    return str(dtype).removeprefix("torch.")
