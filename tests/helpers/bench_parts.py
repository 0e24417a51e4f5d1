"""A Bench with its parts faked: a HashStore, a supervisor that only keeps time, no sinks.

For unit tests of the runner's steps (join, flag check, the process group's capture window)
without launching processes.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch.distributed as dist

from nccldoctor.config import parse_args
from nccldoctor.runner import Bench
from nccldoctor.runtime import LaunchEnv


def quiet_supervisor(store: dist.Store) -> SimpleNamespace:
    """What the Bench asks of its supervisor before the report: steps and the time left."""
    return SimpleNamespace(
        entered=[], enter=None, remaining_s=lambda: 5.0, store=store, on_stop_display=None, on_incomplete=None
    )


def make_bench(phases=(), argv=(), launch: LaunchEnv | None = None, store: dist.Store | None = None) -> Bench:
    store = store or dist.HashStore()
    supervisor = quiet_supervisor(store)
    supervisor.enter = supervisor.entered.append
    config = parse_args(["--quiet", *argv])
    return Bench(config, launch or LaunchEnv(), store, supervisor, list(phases), sinks=lambda options: [])
