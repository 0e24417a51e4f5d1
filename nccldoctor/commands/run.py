"""`nccldoctor run [TORCHRUN OPTIONS] [-- BENCH FLAGS]`: the bench under torchrun, one exit status.

torchrun exits 1 whenever any rank exits non-zero, so a CI step or an sbatch script that runs
torchrun cannot tell a failed check (1) from bad flags (2) or a run that never finished (3).
This runs `python -m torch.distributed.run OPTIONS -m nccldoctor.bench FLAGS` on this node and
exits with the code the ranks agreed on, which each rank leaves in a private folder
(nccldoctor.exitstatus). torchrun's options pass through untouched; without node options it
gets `--standalone`, and without `--nproc-per-node` one rank per visible GPU (else 2 on Gloo),
as `nccldoctor bench` would print; an option set as torchrun's PET_* variable counts as given.

SIGINT, SIGTERM and SIGHUP are forwarded to torchrun (in a session of its own, so a terminal's
Ctrl-C reaches it once; SIGTERMed by the kernel if this process dies unannounced), which stops
the ranks; they still write the partial report and their code, so Ctrl-C or a scheduler's time
limit still ends with the report's 3.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from nccldoctor import exitstatus
from nccldoctor.findings import EXIT_INCOMPLETE, EXIT_PASS, EXIT_USAGE

HELP = (
    "the bench under torchrun on this node, exiting with the report's code "
    "(0 pass, 1 fail, 2 usage, 3 incomplete), not torchrun's"
)
FORWARDS_UNKNOWN = True  # torchrun's options and the bench's flags are theirs to parse
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # the tests put a fake torchrun here
BENCH = ["-m", "nccldoctor.bench"]
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Options that say how this node meets the others; without any, the job is this node alone.
NODE_OPTIONS = ("--standalone", "--nnodes", "--node-rank", "--master-addr", "--master-port")
TORCHRUN_USAGE_EXIT = 2  # argparse's code: torchrun refused its own options
PR_SET_PDEATHSIG = 1  # prctl(2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "nccldoctor run [-h] [torchrun options] [-- bench flags]"
    parser.description = (
        f"{HELP}. Runs `torchrun [torchrun options] -m nccldoctor.bench [bench flags]`; "
        "without node options (--nnodes, --node-rank, --master-*, --rdzv-*) it adds --standalone, "
        "and without --nproc-per-node one rank per visible GPU (else 2). A rank that left no code "
        "(killed, crashed) makes it 3; torchrun refusing its own options makes it 2."
    )


def run(args: argparse.Namespace) -> int:
    options, flags = split(list(getattr(args, "forwarded", [])))
    with tempfile.TemporaryDirectory(prefix="nccldoctor-status-") as folder:
        returncode = launch(torchrun_argv(options, flags), Path(folder))
        code, line = verdict(returncode, exitstatus.read(Path(folder)))
    if line:
        print(f"nccldoctor run: {line}", file=sys.stderr)
    return code


def split(forwarded: list[str]) -> tuple[list[str], list[str]]:
    """torchrun's options (before the first `--`) and the bench's flags (after it)."""
    if "--" not in forwarded:
        return forwarded, []
    cut = forwarded.index("--")
    return forwarded[:cut], forwarded[cut + 1 :]


def torchrun_argv(options: list[str], flags: list[str], gpus: int | None = None) -> list[str]:
    """The whole torchrun command line, with this node's defaults where the options say nothing."""
    return [*TORCHRUN, *node_defaults(options, gpus), *options, *BENCH, *flags]


def node_defaults(
    options: Sequence[str], gpus: int | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """`--standalone` unless the options place the node in a job; `--nproc-per-node` unless given
    (torchrun's own default, 1, would leave every GPU but one idle). torchrun also takes each
    option from PET_<OPTION> (Kubeflow's PyTorchJob sets PET_NNODES, PET_MASTER_ADDR, ...):
    those count as given."""
    env = os.environ if env is None else env
    names = {option.split("=", 1)[0].replace("_", "-") for option in options if option.startswith("--")}
    names |= {"--" + key[4:].lower().replace("_", "-") for key in env if key.startswith("PET_")}
    defaults = []
    if not names & set(NODE_OPTIONS) and not any(name.startswith("--rdzv-") for name in names):
        defaults.append("--standalone")
    if "--nproc-per-node" not in names:
        from nccldoctor.commands.bench import ranks_per_node

        defaults += ["--nproc-per-node", str(ranks_per_node(gpus))]
    return defaults


def launch(argv: list[str], status_dir: Path) -> int:
    """Run torchrun until it ends, forwarding the signals this process gets; its exit status."""
    env = {**os.environ, exitstatus.STATUS_DIR_ENV: str(status_dir)}
    proc = subprocess.Popen(argv, env=env, preexec_fn=_detach_but_die_with_parent)  # no threads here: safe

    def forward(signum: int, frame: object) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        return proc.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _detach_but_die_with_parent() -> None:
    """In torchrun's process, before it starts. Its own session: a terminal's Ctrl-C reaches
    torchrun once, through forward(), not twice (a second signal while torchrun stops its ranks
    cuts that short). And SIGTERM when this wrapper dies without forwarding anything (SIGKILL,
    the OOM killer): torchrun then stops the ranks as it would for a scheduler, not run on
    orphaned."""
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no such request
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def verdict(returncode: int, statuses: list[exitstatus.RankStatus]) -> tuple[int, str | None]:
    """The exit code for this node from the codes its ranks left and torchrun's own status,
    with one line to say why when the ranks' agreed code is not the answer."""
    if not statuses:
        if returncode == EXIT_PASS:  # `-- --help`: the ranks printed help and judged nothing
            return EXIT_PASS, None
        if returncode == TORCHRUN_USAGE_EXIT:
            return EXIT_USAGE, (
                "torchrun refused its options before starting a rank (its message is above; "
                "the bench's flags go after `--`)"
            )
        return EXIT_INCOMPLETE, (
            f"torchrun exited {returncode} and no rank left an exit code (none started, or all were "
            "killed): nothing was judged; torchrun's output above says why"
        )
    expected = max(s.local_world_size for s in statuses)
    if len(statuses) < expected:
        silent = sorted(set(range(expected)) - {s.local_rank for s in statuses})
        return EXIT_INCOMPLETE, (
            f"local rank(s) {', '.join(map(str, silent))} of {expected} left no exit code (killed or "
            "crashed): the run is incomplete; torchrun's output above names the signal or error"
        )
    codes = sorted({s.code for s in statuses})
    if len(codes) > 1:
        return EXIT_INCOMPLETE, f"the ranks on this node left different exit codes {codes}: incomplete"
    return codes[0], None
