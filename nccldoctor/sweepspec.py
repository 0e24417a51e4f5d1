"""`--sweep VAR=v1,v2` specs -> the settings to measure, validated before anything starts.

Any environment variable may be swept (NCCL_ALGO, NCCL_BUFFSIZE, GLOO_SOCKET_IFNAME,
OMP_NUM_THREADS, ...). Values are split on `,`; a value that itself holds commas
(NCCL_IB_HCA=mlx5_0,mlx5_1) is written with `|` between the values instead:
`--sweep 'NCCL_IB_HCA=mlx5_0,mlx5_1|mlx5_2'`. An NCCL_* name that is not one NCCL documents
but is close to one is a typo (NCCL ignores unknown names silently, so the sweep would measure
the same thing twice); a name close to none is accepted, as newer NCCLs add variables.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
import shlex

from nccldoctor.errors import UsageError

DEFAULT_MAX_COMBOS = 16
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")

# From NCCL's environment-variable documentation (2.18-2.28) and the ones torch reads.
_KNOWN_NAMES = """
    NCCL_ALGO NCCL_PROTO NCCL_BUFFSIZE NCCL_LL_BUFFSIZE NCCL_LL128_BUFFSIZE NCCL_NTHREADS
    NCCL_LL128_NTHREADS NCCL_MIN_NCHANNELS NCCL_MAX_NCHANNELS NCCL_MIN_NRINGS NCCL_MAX_NRINGS
    NCCL_MIN_CTAS NCCL_MAX_CTAS NCCL_CTA_POLICY NCCL_NCHANNELS_PER_NET_PEER
    NCCL_NCHANNELS_PER_PEER NCCL_CHUNK_SIZE NCCL_P2P_NET_CHUNKSIZE NCCL_P2P_NVL_CHUNKSIZE
    NCCL_P2P_PCI_CHUNKSIZE NCCL_P2P_LL_THRESHOLD NCCL_LL_THRESHOLD NCCL_LL128_THRESHOLD
    NCCL_TREE_THRESHOLD NCCL_SINGLE_RING_THRESHOLD NCCL_PAT_ENABLE NCCL_NVLS_ENABLE
    NCCL_NVLS_CHUNKSIZE NCCL_NVLSTREE_MAX_CHUNKSIZE NCCL_COLLNET_ENABLE
    NCCL_COLLNET_NODE_THRESHOLD NCCL_SOCKET_IFNAME NCCL_SOCKET_FAMILY NCCL_SOCKET_NTHREADS
    NCCL_NSOCKS_PERTHREAD NCCL_SOCKET_RETRY_CNT NCCL_SOCKET_RETRY_SLEEP_MSEC NCCL_CROSS_NIC
    NCCL_NET NCCL_NET_PLUGIN NCCL_TUNER_PLUGIN NCCL_PROFILER_PLUGIN NCCL_ENV_PLUGIN
    NCCL_NET_GDR_LEVEL NCCL_NET_GDR_READ NCCL_NET_GDR_C2C NCCL_NET_SHARED_BUFFERS
    NCCL_NET_SHARED_COMMS NCCL_NET_DISABLE_INTRA NCCL_NET_FORCE_FLUSH NCCL_NET_OVERHEAD
    NCCL_NET_MAX_RECVS NCCL_NETDEVS_POLICY NCCL_IB_DISABLE NCCL_IB_HCA NCCL_IB_TIMEOUT
    NCCL_IB_RETRY_CNT NCCL_IB_GID_INDEX NCCL_IB_ROUTABLE_FLID_GID_INDEX NCCL_IB_ADDR_FAMILY
    NCCL_IB_ADDR_RANGE NCCL_IB_ROCE_VERSION_NUM NCCL_IB_SL NCCL_IB_TC NCCL_IB_FIFO_TC
    NCCL_IB_RETURN_ASYNC_EVENTS NCCL_IB_GDR_LEVEL NCCL_IB_CUDA_SUPPORT NCCL_IB_QPS_PER_CONNECTION
    NCCL_IB_SPLIT_DATA_ON_QPS NCCL_IB_AR_THRESHOLD NCCL_IB_ADAPTIVE_ROUTING
    NCCL_IB_PCI_RELAXED_ORDERING NCCL_IB_ECE_ENABLE NCCL_IB_MERGE_NICS NCCL_IB_MERGE_VFS
    NCCL_IB_PKEY NCCL_IB_USE_INLINE NCCL_IB_DATA_DIRECT NCCL_OOB_NET_ENABLE NCCL_OOB_NET_IFNAME
    NCCL_UID_STAGGER_THRESHOLD NCCL_UID_STAGGER_RATE NCCL_P2P_DISABLE NCCL_P2P_LEVEL
    NCCL_P2P_DIRECT_DISABLE NCCL_P2P_READ_ENABLE NCCL_P2P_USE_CUDA_MEMCPY NCCL_P2P_PXN_LEVEL
    NCCL_PXN_DISABLE NCCL_PXN_C2C NCCL_SHM_DISABLE NCCL_SHM_USE_CUDA_MEMCPY NCCL_SHM_MEMCPY_MODE
    NCCL_NVB_DISABLE NCCL_NVB_PRECONNECT NCCL_RUNTIME_CONNECT NCCL_GRAPH_REGISTER
    NCCL_LOCAL_REGISTER NCCL_LEGACY_CUDA_REGISTER NCCL_WIN_ENABLE NCCL_GRAPH_MIXING_SUPPORT
    NCCL_DMABUF_ENABLE NCCL_CUMEM_ENABLE NCCL_CUMEM_HOST_ENABLE NCCL_MNNVL_ENABLE NCCL_MNNVL_UUID
    NCCL_MNNVL_CLIQUE_ID NCCL_MEM_SYNC_DOMAIN NCCL_SET_STACK_SIZE NCCL_SET_THREAD_NAME
    NCCL_LAUNCH_MODE NCCL_CHECKS_DISABLE NCCL_CHECK_POINTERS NCCL_COMM_BLOCKING NCCL_COMM_ID
    NCCL_WORK_FIFO_DEPTH NCCL_PROXY_APPEND_BATCH_SIZE NCCL_PROGRESS_APPENDOP_FREQ
    NCCL_CREATE_THREAD_CONTEXT NCCL_GDRCOPY_ENABLE NCCL_GDRCOPY_FLUSH_ENABLE
    NCCL_GDRCOPY_SYNC_ENABLE NCCL_ALLOC_P2P_NET_LL_BUFFERS NCCL_IGNORE_DISABLED_P2P
    NCCL_IGNORE_CPU_AFFINITY NCCL_TOPO_FILE NCCL_TOPO_DUMP_FILE NCCL_CONF_FILE NCCL_RAS_ENABLE
    NCCL_RAS_ADDR NCCL_RAS_TIMEOUT_FACTOR NCCL_DEBUG NCCL_DEBUG_FILE NCCL_DEBUG_SUBSYS
    NCCL_DEBUG_TIMESTAMP_FORMAT NCCL_DEBUG_TIMESTAMP_LEVELS NCCL_ASYNC_ERROR_HANDLING
    NCCL_BLOCKING_WAIT NCCL_NVLS_NCHANNELS NCCL_NVLS_TREE_DISABLE
"""
KNOWN_NCCL_VARIABLES = frozenset(_KNOWN_NAMES.split())
# Ours to set in the workers: sweeping them would fight the bench's own log capture.
RESERVED = frozenset({"NCCL_DEBUG", "NCCL_DEBUG_FILE", "NCCL_DEBUG_SUBSYS"})


def parse_sweep(items: list[str]) -> list[tuple[str, list[str]]]:
    """['NCCL_ALGO=Ring,Tree', ...] -> [('NCCL_ALGO', ['Ring', 'Tree']), ...], or UsageError."""
    spec = [parse_item(item) for item in items]
    check_unique(spec)
    return spec


def check_unique(spec: list[tuple[str, list[str]]]) -> None:
    """Each variable once: two --sweep of one variable would make settings that set it twice."""
    seen: set[str] = set()
    for name, _ in spec:
        if name in seen:
            raise UsageError(f"--sweep: {name} is given twice; put all its values in one --sweep {name}=a,b")
        seen.add(name)


def parse_item(item: str) -> tuple[str, list[str]]:
    """One --sweep: 'NCCL_ALGO=Ring,Tree' -> ('NCCL_ALGO', ['Ring', 'Tree']), or UsageError."""
    name, sep, text = item.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"--sweep: {item!r} is not VAR=value1,value2 (e.g. --sweep NCCL_ALGO=Ring,Tree)")
    if not _NAME.match(name):
        raise UsageError(f"--sweep: {name!r} is not an environment variable name")
    _check_name(name)
    values = [v.strip() for v in text.split("|" if "|" in text else ",")]
    if not text.strip() or any(not v for v in values):
        raise UsageError(f"--sweep {name}: empty value in {text!r} (give values like {name}=a,b)")
    if len(set(values)) != len(values):
        raise UsageError(f"--sweep {name}: a value is repeated in {text!r}")
    return name, values


def _check_name(name: str) -> None:
    if name in RESERVED:
        raise UsageError(f"--sweep: {name} is set by nccldoctor itself in the workers (to read NCCL's log)")
    if not name.startswith("NCCL_") or name in KNOWN_NCCL_VARIABLES:
        return
    close = difflib.get_close_matches(name, KNOWN_NCCL_VARIABLES, n=1, cutoff=0.85)
    if close:
        raise UsageError(
            f"--sweep: {name} is not an NCCL variable; did you mean {close[0]}? "
            "(NCCL ignores names it does not know, so every setting would measure the same)"
        )


def combinations(spec: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    """The cartesian product, in the order given (the first variable varies slowest)."""
    names = [name for name, _ in spec]
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(v for _, v in spec))]


def check_combos(spec: list[tuple[str, list[str]]], max_combos: int) -> None:
    count = math.prod(len(values) for _, values in spec)
    if count > max_combos:
        sizes = " x ".join(str(len(values)) for _, values in spec)
        product = f"{sizes} = {count}" if len(spec) > 1 else str(count)
        raise UsageError(
            f"--sweep: {product} settings (plus the defaults) is more than --max-combos "
            f"{max_combos}; sweep fewer values, or raise --max-combos"
        )


def export_lines(env: dict[str, str]) -> str:
    """`export A=1; export B='^x'` -- what to paste before torchrun on every node."""
    return "; ".join(f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items()))


def backend_mismatch(spec: list[tuple[str, list[str]]], backend: str) -> str | None:
    """One line when a swept variable cannot affect the backend in use, else None."""
    foreign = {"gloo": "NCCL_", "nccl": "GLOO_"}.get(backend)
    names = [name for name, _ in spec if foreign and name.startswith(foreign)]
    if not names:
        return None
    verb = "does" if len(names) == 1 else "do"
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"--sweep: {listed} {verb} nothing on the {backend} backend this run uses" + (
        " (no usable GPU); sweep GLOO_* or other variables, or run on GPUs" if backend == "gloo" else ""
    )
