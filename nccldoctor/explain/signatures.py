"""The catalogue of known failure messages: one declarative entry per message family.

Each Signature names its finding code (nccldoctor.findings.CATALOG), the keywords a line must
hold before its regex is tried (the reader's prefilter: plain substrings), the regex (its
named groups are what is extracted: rank, local_rank, host, peer, port, iface, device, version,
op, seq, last_completed, timeout_ms, status, exitcode, signal, exception, size), a message
template over those groups, an optional fix for this case, its role in root-cause ordering
and the public source of the message text.

Roles: `cause` (a specific reason: wrong interface, GPU error, ...), `crash` (a rank died; the
reason may be named by a cause), `symptom` (what the other ranks see after something broke:
watchdog timeouts, peers gone) and `fact` (no failure by itself: versions and transports that
judges compare across hosts). A line is claimed by the first signature that matches it, so
specific entries come before general ones.

Multi-line messages (torchrun's ChildFailedError block) are in blocks.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

CAUSE, CRASH, SYMPTOM, FACT = "cause", "crash", "symptom", "fact"


@dataclass(frozen=True)
class Signature:
    name: str
    code: str
    keywords: tuple[str, ...]
    pattern: re.Pattern[str]
    message: str  # str.format over the named groups (missing ones read "?")
    source: str
    role: str = CAUSE
    fix: str | None = None  # None: the catalogue's fix for the code
    names_ranks: re.Pattern[str] | None = None  # every rank the message names ("rank 2 and rank 0")
    when: Callable[[dict[str, str]], bool] | None = None  # a test the extracted fields must pass


def sig(
    name: str,
    code: str,
    keywords: tuple[str, ...],
    regex: str,
    message: str,
    source: str,
    role: str = CAUSE,
    fix: str | None = None,
    names_ranks: str | None = None,
    when: Callable[[dict[str, str]], bool] | None = None,
) -> Signature:
    ranks = re.compile(names_ranks) if names_ranks else None
    return Signature(name, code, keywords, re.compile(regex), message, source, role, fix, ranks, when)


_P2P_FIX = (
    "P2P between the GPUs fails or hangs: check that PCIe ACS is disabled and the IOMMU is off or "
    "in passthrough (NCCL's troubleshooting page); to confirm, run with NCCL_P2P_DISABLE=1."
)
_PEER_FIX = (
    "If a rank crashed first, that is the cause; otherwise open the ephemeral ports between the "
    "nodes' addresses (firewall) and check NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME."
)
_IB_FIX = (
    "Check the HCA ports (ibstat: Active, the expected rate), cables and switch; on RoCE set "
    "NCCL_IB_GID_INDEX to the RoCE v2 GID (show_gids) and NCCL_IB_HCA to the ports that are up."
)

# IBV_WC_* status codes NCCL prints as "with error N" / "status=N" (infiniband/verbs.h).
IB_STATUS = {
    "1": "local length error",
    "2": "local QP operation error",
    "4": "local protection error",
    "5": "work request flushed (the QP was already in error: look for the first error)",
    "9": "remote invalid request",
    "10": "remote access error",
    "11": "remote operation error",
    "12": "transport retry counter exceeded (the peer or the path stopped answering: link, "
    "switch, GID index or a dead peer)",
    "13": "RNR retry counter exceeded (the receiver had no buffer posted)",
}

SIGNATURES: list[Signature] = [
    # --- interfaces ----------------------------------------------------------------------
    sig(
        "nccl_no_iface",
        "iface_missing",
        ("no socket interface found", "no interface found", "No usable listening interface"),
        r"(?:Bootstrap|NET/Socket|Net)\s*:\s*(?:[Nn]o socket interface found|[Nn]o interface found"
        r"|No usable listening interface found)",
        "NCCL found no usable socket interface (NCCL_SOCKET_IFNAME matches none?) on {host}",
        "NCCL bootstrap.cc / transport/net_socket.cc WARN; NCCL docs, NCCL_SOCKET_IFNAME",
    ),
    sig(
        "nccl_no_address",
        "iface_missing",
        ("connecting to address",),
        r"connecting to address\s+with family (?P<status>\d+) is neither AF_INET",
        "NCCL has no address to connect with (family {status}): NCCL_SOCKET_IFNAME matched no interface",
        "NCCL misc/socket.cc ncclSocketInit; NVIDIA/nccl#1837",
    ),
    sig(
        "gloo_no_iface",
        "iface_missing",
        ("Unable to find address for",),
        r"Unable to find address for:? (?P<iface>\S+)",
        "Gloo could not find interface {iface} (GLOO_SOCKET_IFNAME) on this node",
        "gloo/transport/tcp/device.cc enforce; pytorch/pytorch#37377",
    ),
    sig(
        "nccl_iface_virtual",
        "iface_virtual",
        ("Socket : Using", "Bootstrap : Using", "Bootstrap: Using", "NET : Using interface"),
        r"(?:NET/Socket|Bootstrap|NET)\s*: Using (?:interface )?(?:\[\d+\])?"
        r"(?P<iface>lo|docker\d*|virbr\d*|veth\w*|br-\w+):(?P<peer>[^<\s]*)",
        "NCCL uses {iface} ({peer}), an interface that does not leave the host",
        "NCCL docs, NCCL_SOCKET_IFNAME (default excludes lo and docker*); NVIDIA/nccl#234",
        fix="Export NCCL_SOCKET_IFNAME=<the node's real NIC> on every node (ip -br addr shows them).",
    ),
    sig(
        "gloo_loopback",
        "iface_virtual",
        ("connect [127.",),
        r"connect \[(?P<peer>127\.\d+\.\d+\.\d+)\]:(?P<port>\d+): "
        r"(?:Connection refused|Connection timed out)",
        "Gloo connects to {peer}:{port}: the hostname resolves to a loopback address",
        "pytorch/pytorch#37377 (Gloo and /etc/hosts 127.0.1.1)",
        fix="Fix /etc/hosts so the hostname resolves to the node's real address, or export "
        "GLOO_SOCKET_IFNAME=<real NIC> on every node.",
    ),
    sig(
        "gloo_loopback_mesh",
        "iface_virtual",
        ("remote=[127.", "local=[127."),
        r"(?:\(rank=(?P<rank>\d+), size=(?P<size>\d+), local=\[(?P<peer>127\.[\d.]+)\]\)"
        r"|remote=\[(?P<peer2>127\.[\d.]+)\])",
        "Gloo uses loopback ({peer}) for a job across nodes: the hostname resolves to 127.x",
        "gloo/transport/tcp/pair.cc connectFullMesh; aws-samples/aws-do-eks#69",
        fix="Export GLOO_SOCKET_IFNAME=<the node's real NIC> on every node, or fix /etc/hosts so the "
        "hostname resolves to the node's address.",
    ),
    # --- rendezvous / master ----------------------------------------------------------------
    sig(
        "store_port_in_use",
        "master_port_in_use",
        ("Address already in use", "EADDRINUSE", "address already in use"),
        r"(?:failed to bind to (?P<peer>\S+?):(?P<port>\d+)|port: (?P<port2>\d+).{0,40}EADDRINUSE"
        r"|EADDRINUSE|[Aa]ddress already in use)",
        "the master port {port} is already in use (another job or a stale process holds it)",
        "torch/csrc/distributed/c10d/socket.cpp (DistNetworkError); pytorch/pytorch#73320",
        fix="Pick a free --master-port (or rdzv endpoint port) or stop the process holding it "
        "(ss -ltnp 'sport = :PORT' on the master).",
    ),
    sig(
        "store_connect",
        "master_unreachable",
        ("client socket has", "RendezvousConnectionError", "RendezvousTimeoutError", "clients joined"),
        r"(?:client socket has (?:timed out after \S+ while trying to connect to|failed to connect to) "
        r"\(?\[?(?P<peer>[\w.:-]+?)\]?(?:, |:)(?P<port>\d+)\)?|RendezvousConnectionError"
        r"|RendezvousTimeoutError"
        r"|Timed out after \d+ seconds waiting for clients\. (?P<size>\d+/\d+) clients)",
        "the rendezvous store at {peer}:{port} could not be reached or not every node joined",
        "torch/csrc/distributed/c10d/socket.cpp, TCPStore.cpp; torch.distributed.elastic.rendezvous",
    ),
    # --- GPU / CUDA ---------------------------------------------------------------------------
    sig(
        "duplicate_gpu",
        "duplicate_gpu",
        ("Duplicate GPU",),
        r"Duplicate GPU detected\s*:\s*rank (?P<rank>\d+) and rank (?P<peer>\d+) both on CUDA device "
        r"(?P<device>\w+)",
        "ranks {rank} and {peer} are on the same GPU (CUDA device {device})",
        "NCCL init.cc WARN 'Duplicate GPU detected'",
        names_ranks=r"\brank (\d+)",
    ),
    sig(
        "shm_nccl",
        "shm_too_small",
        ("shared memory segment", "posix_fallocate", "/dev/shm"),
        r"(?:Error while creating shared memory segment (?P<device>\S+)(?: \(size (?P<size>\d+)\))?"
        r"|posix_fallocate failed : No space left|/dev/shm.{0,80}No space left)",
        "shared memory (/dev/shm) is too small for NCCL or the DataLoader",
        "NCCL docs, Troubleshooting: Docker --shm-size; shmutils.cc WARN; pytorch/pytorch#2244",
        fix="Give the container more shared memory: docker run --shm-size=16g (or --ipc=host); "
        "Kubernetes: an emptyDir with medium Memory mounted at /dev/shm.",
    ),
    sig(
        "shm_torch",
        "shm_too_small",
        ("unable to write to file </torch_", "unable to allocate shared memory"),
        r"unable to (?:write to file </torch_|allocate shared memory)",
        "torch could not allocate shared memory for tensors (/dev/shm too small)",
        "torch/lib/libshm; pytorch/pytorch#2244",
    ),
    sig(
        "cuda_oom",
        "gpu_error",
        ("out of memory",),
        r"(?:CUDA out of memory|CUDA error: out of memory|Cuda failure '?out of memory|OutOfMemoryError)",
        "the GPU ran out of memory",
        "torch.OutOfMemoryError; NCCL 'Cuda failure out of memory'",
        fix="Lower the batch size or model memory (activation checkpointing, sharding); check "
        "that no other process holds the GPU (nvidia-smi).",
    ),
    sig(
        "cuda_ordinal",
        "gpu_error",
        ("invalid device ordinal",),
        r"invalid device ordinal",
        "a rank asked for a GPU that does not exist (more ranks than visible GPUs?)",
        "CUDA cudaErrorInvalidDevice; pytorch/pytorch#67775",
        fix="Set --nproc-per-node to the number of visible GPUs, check CUDA_VISIBLE_DEVICES, and "
        "use LOCAL_RANK (not RANK) for torch.cuda.set_device.",
    ),
    sig(
        "cuda_no_image",
        "gpu_error",
        ("no kernel image",),
        r"no kernel image is available for execution on the device",
        "the installed torch/NCCL was not built for this GPU's architecture",
        "CUDA cudaErrorNoKernelImageForDevice; pytorch/pytorch#31285",
        fix="Install a torch build whose CUDA arch list includes this GPU (torch.cuda.get_arch_list()).",
    ),
    sig(
        "xid",
        "gpu_error",
        ("Xid",),
        r"NVRM: Xid \((?P<device>[^)]*)\): (?P<status>\d+)",
        "the NVIDIA driver reported Xid {status} on GPU {device}",
        "NVIDIA Xid errors documentation (docs.nvidia.com/deploy/xid-errors)",
        fix="Drain the node; Xid 48/63/64/79/92/94/95 are hardware/ECC or fallen-off-the-bus "
        "errors: reset the GPU and run dcgmi diag -r 3.",
    ),
    sig(
        "ecc",
        "gpu_error",
        ("ECC error",),
        r"uncorrectable ECC error",
        "the GPU hit an uncorrectable ECC error",
        "CUDA cudaErrorECCUncorrectable",
        fix="Drain the node, reset the GPU and run dcgmi diag -r 3; replace it if it repeats.",
    ),
    sig(
        "p2p",
        "gpu_error",
        ("peer access", "peer mapping"),
        r"(?:peer access is not supported|peer mapping resources exhausted|P2P.{0,40}(?:fail|error|hang))",
        "GPU peer-to-peer (P2P) access failed",
        "NCCL docs, Troubleshooting: PCI Access Control Services (ACS), IOMMU; NVIDIA/nccl#631",
        fix=_P2P_FIX,
    ),
    sig(
        "cuda_fatal",
        "gpu_error",
        ("illegal memory access", "unspecified launch failure", "Cuda failure"),
        r"(?:an illegal memory access was encountered|unspecified launch failure"
        r"|Cuda failure (?:\d+ )?'(?P<exception>[^']+)')",
        "a CUDA error ({exception}) broke the rank's GPU context",
        "CUDA runtime errors; NCCL checks.h 'Cuda failure'",
        fix="Run with CUDA_LAUNCH_BLOCKING=1 to find the failing kernel; check dmesg for Xid errors.",
    ),
    # --- InfiniBand / RoCE -------------------------------------------------------------------
    sig(
        "ib_completion",
        "ib_error",
        ("Got completion from peer",),
        r"Got completion from peer (?P<peer>\S+) with (?:error |status=)(?P<status>\d+)",
        "InfiniBand completion error {status} ({status_meaning}) with peer {peer}",
        "NCCL transport/net_ib.cc WARN; NVIDIA/nccl#426; infiniband/verbs.h ibv_wc_status",
        fix=_IB_FIX,
    ),
    sig(
        "ib_verbs",
        "ib_error",
        ("ibv_", "NET/IB", "GID"),
        r"(?:ibv_\w+ failed|Call to ibv_\w+ failed|NET/IB\s*:.{0,60}(?:[Ee]rror|failed|Unable)"
        r"|GID.{0,40}(?:invalid|not found|failed))",
        "an InfiniBand/RoCE verbs call failed (QP setup, GID or device)",
        "NCCL transport/net_ib.cc; NCCL docs NCCL_IB_GID_INDEX, NCCL_IB_HCA",
        fix=_IB_FIX,
    ),
    # --- collectives ------------------------------------------------------------------------
    sig(
        "mismatch",
        "collective_mismatch",
        ("mismatch between collectives", "inconsistent collective", "Mismatched collective", "Desync"),
        r"(?:Detected mismatch between collectives on ranks|inconsistent collective|Desync"
        r"|Mismatched collective detected.{0,80}?around rank (?P<peer>\d+))"
        r"(?:.{0,200}?Rank (?P<rank>\d+) is running.{0,200}?OpType=(?P<op>\w+))?",
        "ranks called different collectives (or in a different order){op_text}",
        "torch ProcessGroupWrapper (TORCH_DISTRIBUTED_DEBUG=DETAIL); TORCH_NCCL_DESYNC_DEBUG",
        names_ranks=r"\bRank (\d+) is running",
        fix="Make every rank call the same collectives in the same order with the same shapes "
        "(look for rank-dependent branches); TORCH_DISTRIBUTED_DEBUG=DETAIL names the call.",
    ),
    sig(
        "watchdog",
        "collective_timeout",
        ("Watchdog caught collective operation timeout",),
        r"(?:Rank (?P<rank>\d+)\] )?Watchdog caught collective operation timeout: \w+\(SeqNum=(?P<seq>\d+),"
        r" OpType=(?P<op>\w+).*?Timeout\(ms\)=(?P<timeout_ms>\d+)",
        "collective {op} #{seq} timed out after {timeout_ms} ms",
        "torch ProcessGroupNCCL.cpp watchdog; pytorch/pytorch#97734",
        SYMPTOM,
    ),
    sig(
        "watchdog_work",
        "collective_timeout",
        ("Timeout at NCCL work", "detected by watchdog at work"),
        r"(?:Timeout at NCCL work|detected by watchdog at work): (?P<seq>\d+), last enqueued NCCL work: "
        r"-?\d+, last completed NCCL work: (?P<last_completed>-?\d+)",
        "collective #{seq} timed out (last completed #{last_completed})",
        "torch ProcessGroupNCCL.cpp watchdog (torch >= 2.2)",
        SYMPTOM,
    ),
    sig(
        "gloo_timeout",
        "collective_timeout",
        ("Timed out waiting",),
        r"Timed out waiting (?P<timeout_ms>\d+)ms for (?P<op>\w+) operation",
        "a Gloo {op} timed out after {timeout_ms} ms",
        "gloo/transport/tcp/unbound_buffer.cc",
        SYMPTOM,
    ),
    sig(
        "comm_aborted",
        "collective_timeout",
        ("communicator was aborted",),
        r"NCCL communicator was aborted on rank (?P<rank>\d+)",
        "the NCCL communicator was aborted (after a timeout or an error elsewhere)",
        "torch ProcessGroupNCCL.cpp (DistBackendError)",
        SYMPTOM,
    ),
    # --- peers --------------------------------------------------------------------------------
    sig(
        "nccl_connect",
        "peer_unreachable",
        ("Connect to",),
        r"Connect to (?P<peer>\S+?)<(?P<port>\d+)> failed\s*:\s*(?P<exception>[^,]{1,80})",
        "connecting to peer {peer}:{port} failed: {exception}",
        "NCCL misc/socket.cc socketStartConnect WARN; NVIDIA/nccl#1515",
        SYMPTOM,
        fix=_PEER_FIX,
    ),
    sig(
        "peer_closed",
        "peer_unreachable",
        ("closed by remote peer", "Connection closed by peer"),
        r"Connection closed by (?:remote )?peer \[?(?P<peer>[^\]<\s]+?)\]?[<:](?P<port>\d+)",
        "peer {peer}:{port} closed the connection",
        "NCCL misc/socket.cc socketProgress WARN; gloo/transport/tcp/pair.cc",
        SYMPTOM,
        fix=_PEER_FIX,
    ),
    sig(
        "gloo_connect_timeout",
        "peer_unreachable",
        ("Connect timeout",),
        r"Connect timeout \[(?P<peer>[^\]]*)\](?::(?P<port>\d+))?",
        "Gloo could not connect to its peers (connect timed out, peer [{peer}]): new connections to "
        "the ports Gloo listens on are dropped (a firewall) or the address does not route",
        "gloo/transport/tcp/pair.cc, pair.h 'Connect timeout'; torch ProcessGroupGloo connectFullMesh",
        fix="Let TCP between the nodes' addresses through on the ephemeral ports Gloo listens on "
        "(/proc/sys/net/ipv4/ip_local_port_range) on every node's firewall, and check that "
        "GLOO_SOCKET_IFNAME names a NIC that reaches the other nodes.",
    ),
    sig(
        "gloo_pair",
        "peer_unreachable",
        ("Read error [", "Write error [", "connect ["),
        r"(?:Read error|Write error|connect) \[(?P<peer>[^\]]+)\]:(?P<port>\d+): "
        r"(?P<exception>[A-Z][^\n]{0,60})",
        "Gloo lost or could not reach peer {peer}:{port}: {exception}",
        "gloo/transport/tcp/pair.cc; pytorch/pytorch#37377",
        SYMPTOM,
        fix=_PEER_FIX,
    ),
    sig(
        "peer_generic",
        "peer_unreachable",
        (
            "Connection refused",
            "Connection reset",
            "No route to host",
            "remote process exited",
            "connection abort",
            "Broken pipe",
        ),
        r"(?P<exception>remote process exited or there was a network error|Connection reset by peer"
        r"|Connection refused|No route to host|Software caused connection abort|Broken pipe)",
        "a peer connection failed: {exception}",
        "NCCL ncclRemoteError ('remote process exited or there was a network error'); socket errors",
        SYMPTOM,
        fix=_PEER_FIX,
    ),
    # --- rank layout --------------------------------------------------------------------------
    sig(
        "rank_layout",
        "rank_mismatch",
        ("mismatch in rank count", "already checked in", "Invalid rank", "invalid rank"),
        r"(?:mismatch in rank count from procs (?P<size>\d+ : \d+)|rank (?P<rank>\d+) of \d+ ranks has"
        r" already checked in|Invalid rank requested\s*:\s*(?P<rank2>\d+)/(?P<size2>\d+)"
        r"|[Ii]nvalid rank (?P<peer>-?\d+))",
        "the ranks disagree on the world size or a rank number is used twice / out of range",
        "NCCL bootstrap.cc 'Bootstrap Root : mismatch in rank count'; torch init_process_group",
        fix="Start every node with the same --nnodes and --nproc-per-node and a distinct --node-rank; "
        "do not reuse a rendezvous id across jobs.",
    ),
    sig(
        "store_barrier_count",
        "rank_mismatch",
        ("store based barrier",),
        r"store based barrier .{0,80}?rank: (?P<rank>\d+), key: \S+ \(world_size=(?P<size>\d+), "
        r"worker_count=(?P<count>\d+)",
        "rank {rank} joined a process group of world_size {size} ({count} workers arrived)",
        "torch distributed_c10d._store_based_barrier; facebookresearch/metaseq#52",
        when=lambda f: int(f["rank"]) >= int(f["size"]),  # the rank that should not be there
    ),
    # --- ranks dying --------------------------------------------------------------------------
    sig(
        "dataloader_bus_error",
        "dataloader_worker_died",
        ("bus error encountered in worker",),
        r"Unexpected bus error encountered in worker",
        "a DataLoader worker died of a bus error (PyTorch: probably too little shared memory, /dev/shm)",
        "torch/utils/data/_utils/signal_handling.py; horovod/horovod#2255",
        fix="Give the container more shared memory (docker --shm-size=16g or --ipc=host; Kubernetes: "
        "an emptyDir with medium Memory at /dev/shm), or fewer DataLoader workers.",
    ),
    sig(
        "dataloader",
        "dataloader_worker_died",
        ("DataLoader worker",),
        r"DataLoader worker \(pid(?:\(s\))? (?P<exception>[\d, ]+)\) "
        r"(?:is killed by signal: (?P<signal>[^.]+)|exited unexpectedly)",
        "a DataLoader worker died (pid {exception}{signal_text})",
        "torch/utils/data/_utils/signal_handling.py; pytorch/pytorch#8976",
        fix="Killed: the host ran out of memory (fewer num_workers, smaller prefetch); Bus error: "
        "/dev/shm is too small (--shm-size); otherwise run with num_workers=0 to see the error.",
    ),
    sig(
        "oom_killer",
        "rank_killed",
        ("Killed process", "oom-kill", "oom_kill", "OOM killer"),
        r"(?:Out of memory: Killed process (?P<exception>\d+)|oom[-_]kill|OOM killer)",
        "the kernel's OOM killer killed a process (host memory exhausted)",
        "Linux mm/oom_kill.c; Slurm slurmstepd 'Detected N oom-kill event(s)'",
        CRASH,
        fix="The host ran out of RAM: fewer DataLoader workers, smaller CPU-side buffers, or more "
        "memory per job (Slurm --mem).",
    ),
    sig(
        "elastic_failed",
        "rank_killed",
        ("failed (exitcode: -",),
        r"failed \(exitcode: (?P<exitcode>-\d+)\) local_rank: (?P<local_rank>\d+)(?: \(pid: (?P<pid>\d+)\))?",
        "local rank {local_rank} was killed (exit code {exitcode})",
        "torch/distributed/elastic/multiprocessing/api.py",
        CRASH,
    ),
    sig(
        "elastic_exit",
        "rank_crashed",
        ("failed (exitcode: ",),
        r"failed \(exitcode: (?P<exitcode>\d+)\) local_rank: (?P<local_rank>\d+)(?: \(pid: (?P<pid>\d+)\))?",
        "local rank {local_rank} exited with code {exitcode}",
        "torch/distributed/elastic/multiprocessing/api.py",
        CRASH,
    ),
    sig(
        "srun_killed",
        "rank_killed",
        ("srun: error",),
        r"srun: error: (?P<host>[\w.-]+): tasks? (?P<rank>\d+)(?:[-,]\d+)*: (?P<signal>Killed|Terminated)",
        "Slurm task {rank} on {host}: {signal}",
        "Slurm srun error lines",
        CRASH,
    ),
    sig(
        "shell_killed",
        "rank_killed",
        ("Killed", "exit code", "exit status", "exited with"),
        r"(?:\b(?P<exception>\d+) Killed\s+(?P<detail>\S.{0,120})"
        r"|exit(?:ed with)? (?:code|status)[:=]? ?(?P<exitcode>-9|137)\b)",
        "a process was killed (SIGKILL: the OOM killer, the scheduler or kill -9)",
        "bash job control ('PID Killed  command'); exit status 137 = 128 + SIGKILL",
        CRASH,
    ),
    sig(
        "segfault",
        "rank_crashed",
        ("Segmentation fault", "SIGSEGV", "SIGABRT", "core dumped"),
        r"(?:Segmentation fault|SIGSEGV|SIGABRT|core dumped)",
        "a rank crashed in native code (segfault/abort)",
        "POSIX signals; torch elastic 'Signal 11 (SIGSEGV)'",
        CRASH,
    ),
    sig(
        "exception",
        "rank_crashed",
        ("Error: ", "Exception: ", "Error(", "Exception("),
        r"(?:^|\s)(?:[\w.]*\.)?(?!ChildFailedError|SignalException)(?P<exception>[A-Z]\w*(?:Error|Exception))"
        r"(?::|\() ?(?P<detail>.{0,200})",
        "a rank raised {exception}: {detail}",
        "Python traceback (the exception line ends it)",
        CRASH,
    ),
    # --- facts for the judges ------------------------------------------------------------------
    sig(
        "nccl_version",
        "version_mismatch",
        ("NCCL version",),
        r"NCCL version (?P<version>\d+\.\d+\.\d+)",
        "NCCL {version}",
        "NCCL init.cc showVersion",
        FACT,
    ),
    sig(
        "nccl_network",
        "nccl_transport_fallback",
        ("Using network", "NET/IB", "mlx5_", "libibverbs", "NCCL_IB_HCA set", "NET/OFI", "NET plugin"),
        r"(?:Using network (?P<iface>\w+)|(?P<device>NET/IB : No device found|NET/IB : Using \[\d+\]|mlx5_\d"
        r"|Failed to open libibverbs|NCCL_IB_HCA set|NET/OFI .{0,40}(?:initialization )?[Ff]ailed"
        r"|Failed to initialize NET plugin))",
        "NCCL network {iface}{device}",
        "NCCL init.cc 'Using network'; transport/net_ib.cc",
        FACT,
    ),
    sig(
        "nccl_net_plugin",
        "version_mismatch",
        ("Plugin Path", "Loaded net plugin", "loaded external", "libnccl-net.so", "No plugin found"),
        r"(?:Plugin Path : (?P<version>\S+)|Loaded net plugin (?P<version2>\w+)"
        r"|Successfully loaded external (?:network )?plugin (?P<version3>\S+)"
        r"|(?P<none>Could not find:? libnccl-net\.so|No plugin found))",
        "NCCL net plugin {version}",
        "NCCL plugin/net.cc; NVIDIA/nccl#1634",
        FACT,
    ),
    sig(
        "nccl_p2p",
        "gpu_error",
        ("via P2P",),
        r"via P2P/(?P<device>\w+)",
        "NCCL uses P2P/{device} between GPUs",
        "NCCL transport/p2p.cc channel lines; NCCL docs, Troubleshooting: PCI ACS",
        FACT,
    ),
    sig(
        "nccl_ib_disabled",
        "nccl_transport_fallback",
        ("NCCL_IB_DISABLE",),
        r"NCCL_IB_DISABLE set by environment to (?P<status>\d)",
        "NCCL_IB_DISABLE={status}",
        "NCCL param.cc",
        FACT,
    ),
    sig(
        "nccl_ifname",
        "iface_missing",
        ("NCCL_SOCKET_IFNAME set", "GLOO_SOCKET_IFNAME"),
        r"(?:NCCL|GLOO)_SOCKET_IFNAME(?: set by environment to| set to|=) ?(?P<iface>[^\s,]+)",
        "{iface}",
        "NCCL param.cc / env lines",
        FACT,
    ),
    sig(
        "torch_version",
        "version_mismatch",
        ("torch version", "torch=="),
        r"torch(?: version:? |==)(?P<version>\d+\.\d+\.\d+\S*)",
        "torch {version}",
        "pip / torch.__version__ printouts",
        FACT,
    ),
]

# What the reader looks for before any regex runs; FAILURE_HINTS are kept too, so that a failure
# no signature names is still noticed (unexplained_failure shows its last lines).
# "NCCL WARN" is read but not a failure by itself: healthy runs warn about a missing net plugin.
FAILURE_HINTS = (
    "Traceback",
    "ERROR",
    "FAILED",
    "Killed",
    "fatal",
    "Fatal",
    "FATAL",
    "Error: ",
    "Exception: ",
)
READ_ALSO = ("NCCL WARN",)
KEYWORDS: tuple[str, ...] = tuple(
    sorted({kw for s in SIGNATURES for kw in s.keywords} | set(FAILURE_HINTS + READ_ALSO))
)

# The reader's prefilter: one bytes.find pass over each chunk per anchor, so there are few of
# them, and every keyword holds one (a test checks it): a line with no anchor holds no keyword.
ANCHORS: tuple[str, ...] = (
    "WARN",
    "rror",
    "ERROR",
    "xception",
    "FAIL",
    "ailed",
    "ailure",
    "atal",
    "FATAL",
    "raceback",
    "Kill",
    "kill",
    "SIG",
    "dumped",
    "Segmentation",
    "imeout",
    "imed out",
    "atchdog",
    "onnect",
    "No route",
    "Broken pipe",
    "remote process",
    "peer",
    "ddress",
    "ADDRINUSE",
    "emory",
    "shm",
    "Duplicate",
    "Desync",
    "ismatch",
    "inconsistent",
    "nvalid",
    "GID",
    "ibv",
    "mlx5_",
    "NET/",
    "Using",
    "version",
    "torch==",
    "_IB_",
    "SOCKET_IFNAME",
    "lugin",
    "libnccl-net",
    "loaded external",
    "Xid",
    "DataLoader",
    "no kernel image",
    "interface",
    "exitcode",
    "      :",
    "Proxy Service",
    " nranks ",
    "already checked in",
    "clients joined",
    "client socket",
    "store based barrier",
    "communicator was aborted",
    "posix_fallocate",
    "</torch_",
    "=[127.",
    "P2P",
    "exit code",
    "exit status",
    "exited with",
)
