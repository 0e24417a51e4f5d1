"""A fresh worker process for one variant of a sweep: `python -m nccldoctor.worker`.

Started by nccldoctor.variants with the variant's environment and a JSON spec in
NCCLDOCTOR_WORKER. It joins a process group of its own (the job's store, the variant's key
prefix), runs the probes and, on rank 0, writes the rows to the file the parent named.
It prints nothing on success; on failure one line on stderr for the parent to report.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nccldoctor.redact import install_redacting_streams, mask_value

if TYPE_CHECKING:
    from nccldoctor.config import CollectiveOptions

PR_SET_PDEATHSIG = 1
SPEC_ENV = "NCCLDOCTOR_WORKER"  # the spec's variable in the child's environment


def spec_env(collectives: CollectiveOptions, timeout_s: float, **more: Any) -> dict[str, str]:
    """The environment entry that hands a child its spec (nccldoctor.variants sets it).

    The collective options travel whole, every field, so no flag is lost on the way (a
    hand-kept list of fields once dropped -r); `timeout_s` is the variant's deadline.
    """
    spec = {"collectives": dataclasses.asdict(collectives), "timeout": timeout_s, **more}
    return {SPEC_ENV: json.dumps(spec)}


def read_spec(environ: Mapping[str, str]) -> dict[str, Any]:
    return json.loads(environ[SPEC_ENV])


def spec_collectives(spec: dict[str, Any]) -> CollectiveOptions:
    from nccldoctor.config import CollectiveOptions  # torch: only once the child is sure to run

    return CollectiveOptions(**spec["collectives"])


def phases_of(spec: dict[str, Any], options: CollectiveOptions) -> list:
    """The phases the spec names ("module:function"), built for these options. The sweep that
    starts the child names them, so this module knows no probe."""
    module, _, function = spec["phases"].partition(":")
    return getattr(importlib.import_module(module), function)(options)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to kill us when the parent dies (Linux); if it already has, go now."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent's deadline still kills us
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def _seen(name: str) -> str | None:
    """A watched variable as this child sees it, with any credential in it masked."""
    value = os.environ.get(name)
    return None if value is None else mask_value(name, value)


def run(spec: dict, started: float) -> None:
    import torch.distributed as dist

    from nccldoctor.phase import PhaseContext
    from nccldoctor.runtime import (
        Job,
        choose_backend,
        connect_store,
        init_process_group,
        node_label,
        read_launch_env,
    )

    config = spec_collectives(spec)
    timeout_s = spec["timeout"]
    launch = read_launch_env()
    store = dist.PrefixStore(spec["prefix"], connect_store(launch, timeout_s, serve=False))

    def step(label: str) -> None:  # the parent names this step if we miss the deadline
        store.set(f"step/{launch.rank}", label)

    backend, device = choose_backend(spec["backend"], launch.local_rank, node=node_label(launch))
    step("init_process_group")
    init_process_group(store, launch, backend, device, timeout_s)
    context = PhaseContext(job=Job(launch=launch, backend=backend, device=device), config=config, step=step)
    initialised = time.time()
    rows = [row for phase in phases_of(spec, config) for row in phase.run(context).rows]
    if spec.get("result_path"):
        child = {
            "pid": os.getpid(),
            "env": {name: _seen(name) for name in spec.get("watch", [])},
            "startup_s": started - spec["spawned_at"],  # interpreter start, before any import
            "init_s": initialised - started,  # torch import and the process group
            "measure_s": time.time() - initialised,
        }
        as_dicts = [row.to_dict() for row in rows]  # the parent rebuilds Rows (VariantRunner.run)
        Path(spec["result_path"]).write_text(json.dumps({"rows": as_dicts, "child": child}))
    step("destroy_process_group")
    dist.destroy_process_group()


def main() -> None:
    started = time.time()
    install_redacting_streams()  # its error line reaches the parent's report: no credentials
    spec = read_spec(os.environ)
    die_with_parent(spec["parent_pid"])
    try:
        run(spec, started)
    except Exception as exc:  # one line for the parent's report; the exit code says it failed
        text = str(exc).strip().splitlines()
        print(f"{type(exc).__name__}: {text[0] if text else ''}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown: backend threads must not keep a finished child alive


if __name__ == "__main__":
    main()
