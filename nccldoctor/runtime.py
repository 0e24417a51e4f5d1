"""Joining the job: the launcher's environment -> who am I, which backend, which store.

The rank and world size are RANK and WORLD_SIZE (torchrun, or set by hand), else mpirun's
OMPI_COMM_WORLD_RANK/SIZE, else srun's SLURM_PROCID and its step's task count. Node identity is
the launcher's node rank (torchrun's GROUP_RANK, srun's SLURM_NODEID, or RANK over the ranks per
node): emulated or containerised nodes may share a hostname or fail to resolve it, so the
hostname is only a label.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from nccldoctor.errors import UsageError
from nccldoctor.findings import Finding, make_finding
from nccldoctor.storeio import get_many


class StoreUnreachable(Exception):
    """The rendezvous store cannot be reached: nothing can be coordinated (exit 3)."""


@dataclass(frozen=True)
class LaunchEnv:
    """What the launcher told this process (RANK, WORLD_SIZE, ... or nothing: a single rank)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    node_rank: int = 0
    nnodes: int = 1
    master_addr: str | None = None
    master_port: int | None = None
    agent_store: bool = False  # torchrun's agent hosts the TCPStore on MASTER_PORT
    restart_count: int = 0

    @property
    def distributed(self) -> bool:
        return self.master_addr is not None


def _env_int(env: dict[str, str], name: str, default: int | None = None) -> int:
    raw = env.get(name)
    if raw is None:
        if default is None:
            raise UsageError(
                f"{name} is not set (launch with torchrun, or set RANK, WORLD_SIZE, "
                "MASTER_ADDR and MASTER_PORT)"
            )
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"environment: {name}={raw!r} is not a whole number") from None


# Where this rank sits on its node, per launcher: (local rank, ranks per node, node rank, nodes).
# One launcher's set is read, never a mix: under mpirun inside a Slurm job every rank also
# carries the SLURM_* of the srun task that started mpirun's daemon, which are not its own.
TORCHRUN_VARS = ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE")
OPEN_MPI_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", None, None)
SLURM_VARS = ("SLURM_LOCALID", "SLURM_NTASKS_PER_NODE", "SLURM_NODEID", "SLURM_NNODES")


# Without RANK: the launcher's own rank and world size. srun's count only inside a job step
# (SLURM_STEP_ID): a batch script carries SLURM_PROCID=0 and the job's SLURM_NTASKS too, and a
# bench started there by hand is one process, not rank 0 of a job whose other ranks never come.
OPEN_MPI_RANK = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")
SLURM_STEP_VARS = ("SLURM_STEP_ID", "SLURM_STEPID")  # the second: Slurm's older name


def rank_vars(env: Mapping[str, str]) -> tuple[str, str] | None:
    """The names of this process's rank and world size variables; None: a process of its own."""
    if "RANK" in env:
        return "RANK", "WORLD_SIZE"
    if OPEN_MPI_RANK[0] in env:
        return OPEN_MPI_RANK
    if "SLURM_PROCID" in env and any(name in env for name in SLURM_STEP_VARS):
        # The step's own count where srun gives it: SLURM_NTASKS may be the whole job's.
        return "SLURM_PROCID", "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in env else "SLURM_NTASKS"
    return None


def rank_hint(env: Mapping[str, str] | None = None) -> int:
    """This process's rank as far as the launcher says (0 when it does not), for deciding who
    prints an error that stops every rank before the launch variables could be read."""
    env = os.environ if env is None else env
    names = rank_vars(env)
    raw = env.get(names[0], "0") if names else "0"
    return int(raw) if raw.strip().isdigit() else 0


def _launcher_vars(env: dict[str, str], rank: int) -> tuple[str | None, ...]:
    """The variable names that say where this rank is: torchrun's (also when only some are
    set), else Open MPI's, else srun's when they are this rank's own task (SLURM_PROCID)."""
    if "LOCAL_RANK" in env or "GROUP_RANK" in env or "LOCAL_WORLD_SIZE" in env:
        return TORCHRUN_VARS
    if OPEN_MPI_VARS[0] in env:
        return OPEN_MPI_VARS
    if SLURM_VARS[0] in env and env.get("SLURM_PROCID", str(rank)).strip() == str(rank):
        return SLURM_VARS
    return (None, None, None, None)


def _env_opt(env: dict[str, str], name: str | None) -> int | None:
    return _env_int(env, name) if name is not None and name in env else None


def read_launch_env(env: dict[str, str] | None = None) -> LaunchEnv:
    """Parse the launcher's variables; without any (rank_vars) the process is a single rank of
    its own, and so is a launcher's only process when no master is set."""
    env = dict(os.environ if env is None else env)
    names = rank_vars(env)
    if names is None:
        return LaunchEnv()
    rank, world_size = (_env_int(env, name) for name in names)
    if not 0 <= rank < world_size:
        raise UsageError(f"environment: {names[0]}={rank} is outside {names[1]}={world_size}")
    if world_size == 1 and not env.get("MASTER_ADDR") and not env.get("MASTER_PORT"):
        return LaunchEnv()  # nobody to meet: no rendezvous needed
    master_addr, master_port = _master(env, names[0])
    local_rank, local_world_size, node_rank, nnodes = _placement(env, rank, world_size)
    return LaunchEnv(
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        local_world_size=local_world_size,
        node_rank=node_rank,
        nnodes=nnodes,
        master_addr=master_addr,
        master_port=master_port,
        agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true",
        restart_count=_env_int(env, "TORCHELASTIC_RESTART_COUNT", 0),
    )


# What to export when the master is missing, per launcher (by its rank variable): torchrun sets
# MASTER_ADDR and MASTER_PORT itself, srun and mpirun do not.
_MASTER_HOW = {
    "SLURM_PROCID": (
        "srun",
        'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) '
        "MASTER_PORT=29500 (any free port) before srun",
    ),
    "OMPI_COMM_WORLD_RANK": (
        "mpirun",
        "pass them to every rank: mpirun -x MASTER_ADDR=<rank 0's host> -x MASTER_PORT=29500 (any free port)",
    ),
    "RANK": (None, "set MASTER_ADDR (rank 0's host) and MASTER_PORT (a free port there) on every rank"),
}


def _master(env: dict[str, str], rank_name: str) -> tuple[str, int]:
    """MASTER_ADDR and MASTER_PORT, or one line saying what to export."""
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
    if missing:
        launcher, how = _MASTER_HOW[rank_name]
        what = " and ".join(missing) + (" are" if len(missing) > 1 else " is")
        unset = f"{what} not set ({launcher} does not set them)" if launcher else f"{what} not set"
        raise UsageError(f"environment: {unset}: {how}, or launch with torchrun")
    return env["MASTER_ADDR"], _env_int(env, "MASTER_PORT")


def _placement(env: dict[str, str], rank: int, world_size: int) -> tuple[int, int, int, int]:
    """(local rank, ranks per node, node rank, nodes) from whichever launcher set them.

    The node rank is derived from RANK only when the launcher says how many ranks a node runs;
    guessing (every rank on node 0, as before) would make each rank wait for peers that are
    not coming, or lead a node nobody else is on."""
    names = _launcher_vars(env, rank)
    local_rank, local_size, node_rank, nnodes = (_env_opt(env, name) for name in names)
    if local_size is not None:
        if local_size < 1:
            raise UsageError(f"environment: {names[1]}={local_size} must be 1 or more")
        if node_rank is None:
            _check_numbered_by_node(rank, local_rank, local_size, names)
        local_rank = rank % local_size if local_rank is None else local_rank
        node_rank = rank // local_size if node_rank is None else node_rank
        nnodes = -(-world_size // local_size) if nnodes is None else nnodes
    if world_size == 1:
        return local_rank or 0, 1, node_rank or 0, nnodes or 1
    if local_rank is None or node_rank is None or nnodes is None:
        raise UsageError(
            f"environment: rank {rank} of {world_size} cannot tell which node it is on: launch with "
            "torchrun (LOCAL_RANK, GROUP_RANK, GROUP_WORLD_SIZE), srun (SLURM_LOCALID, SLURM_NODEID, "
            "SLURM_NNODES) or mpirun (OMPI_COMM_WORLD_LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_SIZE), or set "
            "LOCAL_WORLD_SIZE (ranks per node, in RANK order)"
        )
    return local_rank, local_size or -(-world_size // nnodes), node_rank, nnodes


def _check_numbered_by_node(
    rank: int, local_rank: int | None, local_size: int, names: tuple[str | None, ...]
) -> None:
    """RANK // ranks per node is the node only when the ranks fill one node after another.
    mpirun --map-by node deals them out round robin instead: rank 1 is then local rank 0 of the
    second node, and the derived node would be wrong (each rank waiting on the wrong leader)."""
    if local_rank is None or rank % local_size == local_rank:
        return
    raise UsageError(
        f"environment: rank {rank} is {names[0]}={local_rank} of {names[1]}={local_size}, so the "
        "ranks are not numbered node by node and its node cannot be derived from its rank: place "
        "ranks by slot (mpirun's default, not --map-by node), or launch with torchrun or srun"
    )


def choose_backend(
    requested: str,
    local_rank: int,
    env: Mapping[str, str] | None = None,
    node: str | None = None,
) -> tuple[str, torch.device]:
    """auto: NCCL on this rank's GPU when CUDA is usable, else Gloo on the CPU.

    `env` (CUDA_VISIBLE_DEVICES) and `node` (who this is, for the error) default to this
    process's; tests pass their own with a fake torch.cuda."""
    cuda_ok = torch.cuda.is_available() and dist.is_nccl_available()
    if requested == "gloo" or (requested == "auto" and not cuda_ok):
        return "gloo", torch.device("cpu")
    if not cuda_ok:
        raise UsageError("--backend nccl needs CUDA and NCCL, and this rank has neither usable")
    env = os.environ if env is None else env
    return "nccl", rank_device(local_rank, torch.cuda.device_count(), env.get("CUDA_VISIBLE_DEVICES"), node)


def rank_device(
    local_rank: int, visible: int, cuda_visible_devices: str | None, node: str | None
) -> torch.device:
    """The GPU of a rank that sees `visible` GPUs.

    A launcher that gives each process its own GPU (Slurm --gpus-per-task=1, some Kubernetes
    device plugins) leaves one visible on every rank: that one is the rank's, whatever its
    LOCAL_RANK. With several visible, LOCAL_RANK picks one (torchrun's convention). A rank
    left without one stops here: on Gloo while its peers use NCCL it would hang them."""
    if visible == 1:
        return torch.device("cuda", 0)
    if 0 <= local_rank < visible:
        return torch.device("cuda", local_rank)
    cvd = " unset" if cuda_visible_devices is None else f"={cuda_visible_devices}"
    raise UsageError(
        f"{node or hostname()}: LOCAL_RANK {local_rank} has no GPU "
        f"({visible} visible, CUDA_VISIBLE_DEVICES{cvd}): start as many ranks per node as it has GPUs, "
        "or give each rank one GPU, or use --backend gloo"
    )


def device_uuid(device: torch.device) -> str:
    """This rank's GPU as NVML names it ("GPU-<uuid>"); "" on a CPU or when torch cannot say.

    torch's device properties carry the CUDA UUID without NVML's "GPU-" prefix; the UUID, unlike
    the index, survives CUDA_VISIBLE_DEVICES (which renumbers the GPUs this process sees).
    """
    if device.type != "cuda":
        return ""
    try:
        return f"GPU-{torch.cuda.get_device_properties(device).uuid}"
    except (AttributeError, AssertionError, RuntimeError):  # an old torch, no driver, a lost GPU
        return ""


def node_label(launch: LaunchEnv) -> str:
    """This process's node for a message: the launcher's node rank, then the hostname."""
    return f"node {launch.node_rank} ({hostname()})"


def connect_store(launch: LaunchEnv, timeout_s: float, serve: bool = True) -> dist.Store:
    """A client of the job's rendezvous store (a private in-memory store for a single rank).

    Under torchrun the agent already serves a TCPStore on MASTER_PORT; other launchers that
    only set MASTER_ADDR/PORT get one served by rank 0, as init_process_group would
    (`serve`: this connection may be that server; a second client of rank 0 must not).
    """
    if not launch.distributed:
        return dist.HashStore()
    timeout = datetime.timedelta(seconds=timeout_s)
    try:
        return dist.TCPStore(
            launch.master_addr,
            launch.master_port,
            world_size=launch.world_size,
            is_master=serve and launch.rank == 0 and not launch.agent_store,
            timeout=timeout,
            wait_for_workers=False,
        )
    except (RuntimeError, dist.DistError) as exc:
        raise StoreUnreachable(
            f"cannot reach the rendezvous store at {launch.master_addr}:{launch.master_port}: "
            f"{str(exc).splitlines()[0]}"
        ) from exc


def run_prefix(launch: LaunchEnv) -> str:
    """Keys of one launch attempt; a torchrun restart gets fresh ones."""
    return f"nccldoctor/{launch.restart_count}/"


@dataclass
class RankInfo:
    """What each rank publishes about itself before any collective (store only)."""

    rank: int
    local_rank: int
    node_rank: int
    hostname: str
    pid: int
    device: str
    env: dict[str, str] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)  # config.shared_flags: must match everywhere
    backend: str = ""  # as resolved on this rank (the flag may say auto); "" from an older rank
    gpu_uuid: str = ""  # device_uuid: "" on a CPU, or when torch cannot say

    @property
    def kind(self) -> str:
        """What the rank will join with: "nccl (cuda)", "gloo (cpu)"."""
        return f"{self.backend or '?'} ({self.device.split(':')[0]})"


def _ranks(ranks: list[int]) -> str:
    return f"{'rank' if len(ranks) == 1 else 'ranks'} {', '.join(map(str, ranks))}"


def backend_disagreement(infos: list[RankInfo]) -> str | None:
    """One line naming the ranks, per node, whose backend or device type differs from most
    ranks' (rank 0's on a tie), or None. The flags may all say auto and still resolve
    differently (a node without usable CUDA): such ranks would wait on each other until the
    deadline, so they are stopped before any collective."""
    if not infos:
        return None
    counts = Counter(i.kind for i in infos)
    usual = max(counts, key=lambda kind: (counts[kind], kind == infos[0].kind))
    odd: dict[tuple[int, str, str], list[int]] = {}
    for i in infos:
        if i.kind != usual:
            odd.setdefault((i.node_rank, i.hostname, i.kind), []).append(i.rank)
    if not odd:
        return None
    named = "; ".join(
        f"node {node} ({host}): {_ranks(ranks)} on {kind}"
        for (node, host, kind), ranks in sorted(odd.items())
    )
    return (
        f"ranks resolved different backends: {counts[usual]} of {len(infos)} use {usual}, but {named} "
        "(--backend auto picks NCCL only where CUDA and a GPU are usable: fix those nodes, or pass "
        "the same --backend nccl or gloo on every node)"
    )


def duplicate_gpus(infos: list[RankInfo]) -> list[Finding]:
    """duplicate_gpu for each GPU that two or more ranks of one node would use. NCCL refuses
    that in init ("Duplicate GPU detected"), so the ranks must be named before it: the usual
    cause is the same CUDA_VISIBLE_DEVICES on every rank, each then taking the one GPU it sees."""
    sharing: dict[tuple[int, str], list[RankInfo]] = {}
    for info in infos:
        if info.gpu_uuid:
            sharing.setdefault((info.node_rank, info.gpu_uuid), []).append(info)
    return [
        _duplicate_gpu(node, uuid, same) for (node, uuid), same in sorted(sharing.items()) if len(same) > 1
    ]


def _duplicate_gpu(node: int, uuid: str, infos: list[RankInfo]) -> Finding:
    ranks = sorted(info.rank for info in infos)
    visible = {info.rank: info.env.get("CUDA_VISIBLE_DEVICES") for info in infos}
    return make_finding(
        "duplicate_gpu",
        f"node {node} ({infos[0].hostname}): {_ranks(ranks)} would all use GPU {uuid}; NCCL refuses "
        'two ranks on one GPU ("Duplicate GPU detected"), so nothing was measured',
        ranks=ranks,
        nodes=[node],
        evidence={
            "gpu_uuid": uuid,
            "devices": {info.rank: info.device for info in infos},
            "cuda_visible_devices": visible,
        },
        fix="give each rank its own GPU: a different CUDA_VISIBLE_DEVICES per rank (CUDA_VISIBLE_DEVICES "
        f"per rank here: {', '.join(f'{r}: {v}' for r, v in sorted(visible.items()))}), or all GPUs "
        "visible so that LOCAL_RANK picks one, and no more ranks per node than GPUs",
    )


def publish_rank_info(store: dist.Store, info: RankInfo) -> None:
    store.set(f"info/{info.rank}", json.dumps(asdict(info)))


def wait_for(store: dist.Store, keys: list[str], timeout_s: float) -> None:
    """Block until every key is set, for at most `timeout_s` (a spent deadline still gets one
    short look rather than an invalid zero timeout); raises the store's timeout error."""
    store.wait(keys, datetime.timedelta(seconds=max(timeout_s, 0.1)))


def read_rank_infos(store: dist.Store, world_size: int, timeout_s: float) -> list[RankInfo]:
    """Every rank's RankInfo, one round trip per chunk of ranks (storeio.CHUNK); waits (bounded)
    for ranks still joining."""
    keys = [f"info/{r}" for r in range(world_size)]
    wait_for(store, keys, timeout_s)
    return [RankInfo(**json.loads(raw)) for raw in get_many(store, keys)]


def init_process_group(
    store: dist.Store, launch: LaunchEnv, backend: str, device: torch.device, timeout_s: float
) -> bool:
    """Join the process group; every later collective times out after `timeout_s`.

    Returns whether the backend started inside this call: False when NCCL will only start at
    the first collective (no eager init), so what was set in the environment around this
    call (NCCL's log variables) is no longer there when it reads it."""
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before init: NCCL binds the communicator to this GPU
    dist.init_process_group(
        backend=backend,
        store=dist.PrefixStore("pg", store),
        rank=launch.rank,
        world_size=launch.world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
        device_id=device if device.type == "cuda" else None,
    )
    return backend != "nccl" or nccl_inits_eagerly(device)


# The first NCCL whose communicators torch can split, and so creates eagerly when
# init_process_group gets a device_id.
NCCL_EAGER_SINCE = (2, 18)


def nccl_inits_eagerly(device: torch.device) -> bool:
    """Whether init_process_group(device_id=device) created NCCL's communicator at once.

    torch's own test (distributed_c10d.init_process_group) is whether the group's backend for
    the device supports splitting; a torch without that attribute is judged by NCCL's version."""
    try:
        return bool(dist.group.WORLD._get_backend(device).supports_splitting)
    except (AttributeError, RuntimeError, ValueError):
        pass
    try:
        return tuple(torch.cuda.nccl.version()[:2]) >= NCCL_EAGER_SINCE
    except (AttributeError, RuntimeError):
        return False


def gather_objects(value: Any) -> list[Any]:
    """Every rank's `value` (small, picklable), indexed by rank, on every rank."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def hostname() -> str:
    return socket.gethostname()


@dataclass
class Job:
    """The joined job as this rank sees it. `ranks` is filled on the report writer only."""

    launch: LaunchEnv
    backend: str
    device: torch.device
    ranks: list[RankInfo] = field(default_factory=list)
    # False: NCCL starts at the first collective, not inside init_process_group (no eager init)
    backend_started_at_init: bool = True

    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    def node_of(self, rank: int) -> int:
        if rank < len(self.ranks):
            return self.ranks[rank].node_rank
        return rank // self.launch.local_world_size

    def nodes_of(self, ranks: list[int]) -> list[int]:
        return sorted({self.node_of(r) for r in ranks})
