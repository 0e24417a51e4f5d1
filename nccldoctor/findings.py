"""Findings: the catalogue of codes (stable API), the Finding record, verdict and exit code.

Every code the tool can emit is listed in CATALOG with its default severity, what it means
and the generic fix; README's table is checked against it by a test. A probe that emits a
finding fills in the specifics: which ranks and nodes, the numbers, and a fix for this case.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


class Severity(str, enum.Enum):
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CodeSpec:
    code: str
    severity: Severity
    meaning: str
    fix: str


_SPECS = [
    CodeSpec(
        "wrong_data",
        Severity.FAIL,
        "A collective returned wrong values on the named ranks (checked element by element).",
        "Suspect the named ranks' GPU or host memory and their links: run the bench again with "
        "only those nodes, check dmesg / NVML for ECC and Xid errors, and drain the node if it "
        "repeats.",
    ),
    CodeSpec(
        "rank_timeout",
        Severity.FAIL,
        "The run's deadline passed and the named ranks had not arrived at the step the others "
        "were waiting in (they were alive but late, or the collective never completed).",
        "Look at what the named ranks were doing (py-spy dump, NCCL_DEBUG=INFO); if every rank "
        "is named, the collective itself hung: check the network (interfaces, firewall) "
        "between the named nodes, or raise --timeout if the run is just slow.",
    ),
    CodeSpec(
        "rank_crashed",
        Severity.FAIL,
        "The named ranks died or stopped responding (no heartbeat) before the run finished.",
        "Read the named ranks' stderr (torchrun prints it); check dmesg on their node for OOM "
        "kills, segfaults or Xid errors.",
    ),
    CodeSpec(
        "rank_frozen",
        Severity.FAIL,
        "The named ranks stopped sending heartbeats while their processes still exist: stopped "
        "(state T: SIGSTOP, a debugger, a paused VM or container) or stuck in the kernel (state D: "
        "a hung driver, GPU or filesystem). Seen by another rank on the same node.",
        "Look at the process on its node: `cat /proc/PID/stack` and `py-spy dump --pid PID` (D: "
        "dmesg for Xid, NFS or driver errors; T: who stopped it); kill it, and drain the node if "
        "it repeats.",
    ),
    CodeSpec(
        "run_interrupted",
        Severity.FAIL,
        "The run was stopped by a signal (Ctrl-C, SIGTERM from the launcher or the scheduler) "
        "before it finished.",
        "Run it again; if a scheduler stopped it, give the job more time or lower --max-bytes.",
    ),
    CodeSpec(
        "collective_error",
        Severity.FAIL,
        "A collective failed with a backend error on the named ranks while no rank crashed or "
        "ran late: the connection between ranks broke.",
        "Check the links and firewalls between the named nodes (NCCL_DEBUG=INFO shows the "
        "failing connection); re-run to see whether it repeats.",
    ),
    CodeSpec(
        "low_bandwidth",
        Severity.FAIL,
        "Bus bandwidth at the largest size measured is below what the user said to expect (--expect-busbw), "
        "or below an expectations file's bar (--expect: min_busbw_gbps, min_share_of_line_rate).",
        "Check which interface and transport carry the traffic (NCCL_DEBUG=INFO) and the links "
        "of the slowest ranks; re-run with a larger --max-bytes if the curve had not levelled.",
    ),
    CodeSpec(
        "high_latency",
        Severity.FAIL,
        "A collective took longer than the expectations file (--expect) allows: max_latency_us, "
        "at the smallest size measured or at the size the file names.",
        "Check which transport carries small messages (NCCL_DEBUG=INFO: NET/IB or NET/Socket, "
        "NCCL_PROTO), the switch path between the nodes and CPU contention on the ranks.",
    ),
    CodeSpec(
        "node_count_mismatch",
        Severity.FAIL,
        "The job ran on another number of nodes than the expectations file (--expect) says (job.nodes).",
        "Check the scheduler's allocation and torchrun's --nnodes; a node that did not join "
        "the rendezvous is named in its own log.",
    ),
    CodeSpec(
        "nic_count_mismatch",
        Severity.FAIL,
        "A node has another number of active NICs than the expectations file (--expect) says "
        "(job.nics_per_node): its active InfiniBand/RoCE ports when it has any, else its real "
        "Ethernet interfaces.",
        "On the named nodes check ibstat (a port Down or Polling: cable, transceiver, switch "
        "port) or ip link; drain the node until the port is back.",
    ),
    CodeSpec(
        "low_ddp_throughput",
        Severity.FAIL,
        "The reference DDP benchmark trained fewer tokens per second than the expectations file "
        "(--expect) says (ddp.min_tokens_per_s).",
        "Compare the DDP section's exposed communication and per-rank step times with the "
        "collectives' busbw: slow links or a straggler show there first.",
    ),
    CodeSpec(
        "expectation_not_checked",
        Severity.INFO,
        "Rules of the expectations file (--expect) that this run did not measure (a probe not "
        "run, --health off, --no-ddp, a one-node job): listed, not passed.",
        "Run the probes, health checks or DDP benchmark the rules need, or drop those rules "
        "from the file for this kind of run.",
    ),
    CodeSpec(
        "iface_missing",
        Severity.FAIL,
        "The configured socket interface (NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME) matches no "
        "interface on the named node; the message lists what exists there (explain: NCCL's or "
        "Gloo's log says it found no usable interface).",
        "Set the variable to an interface that exists on every node (the fix names one).",
    ),
    CodeSpec(
        "iface_down",
        Severity.FAIL,
        "The interface the backend would use on the named node is down.",
        "Bring it up, or point the socket variable at an interface that is up.",
    ),
    CodeSpec(
        "iface_virtual",
        Severity.FAIL,
        "On a multi-node job the backend would carry traffic on an interface that does not leave "
        "the host (loopback, docker*, virbr*, veth*, ...): Gloo's loopback fallback when the "
        "hostname does not resolve to a local address, or NCCL's default picking a bridge.",
        "Export the socket variable with the node's real NIC (the fix names one), or fix "
        "/etc/hosts so the hostname resolves to that NIC's address.",
    ),
    CodeSpec(
        "iface_mismatch",
        Severity.FAIL,
        "The interfaces the backend would use on the named nodes share no subnet with node 0's.",
        "Use interfaces on one common network on every node (the fix names one all nodes share).",
    ),
    CodeSpec(
        "mtu_mismatch",
        Severity.WARN,
        "The interfaces in use have different MTUs on different nodes (fragmentation, stalls "
        "with jumbo frames).",
        "Set every node's interface to the MTU the switch fabric uses (usually the one most nodes "
        "use, or the largest): ip link set dev IFACE mtu MTU on the odd nodes.",
    ),
    CodeSpec(
        "iface_slower_than_best",
        Severity.WARN,
        "In the per-NIC sweep the best candidate interface all nodes share was 1.5x or more "
        "faster than the interface the backend uses.",
        "Export the socket variable with the faster interface (the fix names it), or fix "
        "/etc/hosts so the hostname resolves to its address.",
    ),
    CodeSpec(
        "ib_port_slow",
        Severity.WARN,
        "In the per-NIC sweep on NCCL over InfiniBand/RoCE (one NCCL_IB_HCA port at a time) a "
        "port was 1.5x or more slower than the best port; NCCL uses every active port, so "
        "a slow one holds back its share of every transfer.",
        "Check the port on every node (ibstat: State Active and the expected Rate; its cable and "
        "switch port); meanwhile leave it out with NCCL_IB_HCA=^=<port> (the fix names it).",
    ),
    CodeSpec(
        "port_blocked",
        Severity.FAIL,
        "Connections from one node to ports another node listens on (sampled across its "
        "ephemeral range, plus --ports) were dropped (timeout: a DROP rule) or refused (a "
        "REJECT rule). NCCL and Gloo listen on ephemeral ports, so the job would hang in init.",
        "Open the named ports on the named node's firewall for the other nodes' addresses "
        "(the fix gives the rule).",
    ),
    CodeSpec(
        "master_unresolvable",
        Severity.FAIL,
        "preflight: the master address does not resolve (DNS or /etc/hosts) on this node.",
        "Use the master's IP address, or add it to DNS / /etc/hosts on every node.",
    ),
    CodeSpec(
        "master_unreachable",
        Severity.FAIL,
        "preflight: a TCP connection to the master's port timed out (filtered by a firewall, "
        "or the host is down) or there is no route to it; explain: the log shows the rendezvous "
        "store could not be reached, or the rendezvous timed out before every node joined.",
        "Open the master port (and the ephemeral range) on the master's firewall for this "
        "node, or check the route and the interface shown.",
    ),
    CodeSpec(
        "master_not_listening",
        Severity.INFO,
        "preflight: the master host answered but nothing listens on the port yet (connection "
        "refused): expected before torchrun starts there.",
        "Nothing to fix before launch; if torchrun already runs on the master, check the port.",
    ),
    CodeSpec(
        "gpu_count_mismatch",
        Severity.FAIL,
        "A node runs more ranks than it has visible GPUs (NCCL would fail on the extra ranks), "
        "or fewer (GPUs left idle: info); checked by preflight for --nproc-per-node and by the "
        "bench's consistency phase on every node; or (fail) a node's visible GPUs differ from an "
        "--expect file's job.gpus_per_node.",
        "Set --nproc-per-node to the number of GPUs, or fix CUDA_VISIBLE_DEVICES.",
    ),
    CodeSpec(
        "version_mismatch",
        Severity.FAIL,
        "Nodes run different versions: fail for torch, the CUDA runtime, NCCL, the Python minor "
        "version or nccldoctor (ranks that disagree hang or diverge); warn for the NVIDIA driver "
        "and for packages named with --check-package. The odd nodes are named against the majority.",
        "Run every node from one environment (one container image or venv); install the majority's "
        "version on the named nodes.",
    ),
    CodeSpec(
        "rank_layout_uneven",
        Severity.WARN,
        "Nodes run different numbers of ranks: torchrun accepts it, but data- and tensor-parallel "
        "groups usually assume the same number per node.",
        "Start the same --nproc-per-node on every node.",
    ),
    CodeSpec(
        "env_mismatch",
        Severity.WARN,
        "A variable that changes communication or numerics (NCCL_*, GLOO_*, TORCH_*, CUDA_*, "
        "OMP_NUM_THREADS, the socket interface variables) differs between nodes or is set on some "
        "only; secret-looking values are compared by digest and never shown.",
        "Export the same value on every node (or unset it everywhere) before torchrun.",
    ),
    CodeSpec(
        "duplicate_gpu",
        Severity.FAIL,
        "Two or more ranks of one node would use the same GPU (the same UUID): NCCL refuses that "
        'in init ("Duplicate GPU detected"), so the run stops before the process group.',
        "Give each rank its own GPU: a different CUDA_VISIBLE_DEVICES per rank, or all GPUs "
        "visible so that LOCAL_RANK picks one, and no more ranks per node than GPUs.",
    ),
    CodeSpec(
        "clock_skew",
        Severity.WARN,
        "A node's wall clock differs from rank 0's by more than 1 s (fail above 30 s; both "
        "configurable), counting only what the measurement's uncertainty cannot explain: measured "
        "through the rendezvous store before the process group forms, NTP-style (the tightest of "
        "several round trips). Logs, timestamps and deadlines compared across nodes are off by that much.",
        "On the named nodes check the time service (`chronyc tracking`, `timedatectl status`); enable "
        "NTP (chrony, or `timedatectl set-ntp true`) and step the clock (`chronyc makestep`).",
    ),
    CodeSpec(
        "nccl_transport_fallback",
        Severity.WARN,
        "NCCL's own log shows it used sockets although InfiniBand/RoCE devices are present "
        "and NCCL_IB_DISABLE is not set: a large slowdown.",
        "Check NCCL_IB_HCA, the IB port state (ibstat) and that the NCCL IB plugin / rdma-core "
        "libraries are installed; NCCL_DEBUG=INFO shows why NET/IB found no device.",
    ),
    CodeSpec(
        "nccl_iface_unexpected",
        Severity.WARN,
        "NCCL's own log shows it used a different socket interface than the one predicted "
        "from the node's interfaces and NCCL_SOCKET_IFNAME.",
        "Set NCCL_SOCKET_IFNAME explicitly to the interface you mean on every node.",
    ),
    CodeSpec(
        "ddp_divergence",
        Severity.FAIL,
        "In the reference DDP benchmark the replicas differ after a synchronised step "
        "(parameter checksums compared across ranks; the differing ranks are named), or the loss "
        "on its learnable synthetic task did not fall: gradients are not being averaged correctly.",
        "Suspect the named ranks' memory and links (wrong_data in the probes points the same way); "
        "check that every rank runs the same code, torch and NCCL versions.",
    ),
    CodeSpec(
        "sampler_overlap",
        Severity.FAIL,
        "In the reference DDP benchmark the ranks' DistributedSampler shards (built with the "
        "process group's rank and world size) overlap beyond the sampler's own padding, leave "
        "indices on no rank, or set_epoch did not change their order: ranks would train on the "
        "same samples, miss some, or see every epoch alike.",
        "Build the sampler with the global rank and world size (dist.get_rank(), "
        "dist.get_world_size(), not LOCAL_RANK or a per-node count), the same dataset and seed on "
        "every rank, and call set_epoch(epoch) every epoch.",
    ),
    CodeSpec(
        "rng_identical",
        Severity.WARN,
        "In the reference DDP benchmark two or more ranks drew the same numbers from the torch RNG "
        "it seeds per rank (seed + rank): their random batches, dropout masks and augmentations "
        "would be identical. The gradients are still averaged correctly.",
        "Seed each rank's RNG with the global rank (seed + dist.get_rank()), not the local rank or "
        "one seed for all; keep the sampler's seed the same on every rank.",
    ),
    CodeSpec(
        "fs_inconsistent",
        Severity.FAIL,
        "With --ckpt-dir, some ranks could not see checkpoint files (shards, manifest, COMPLETE "
        "marker) that other ranks wrote there: the directory is not one shared filesystem "
        "(node-local disks), so a sharded checkpoint saved there could not be loaded.",
        "Checkpoint to a filesystem every node mounts (NFS, Lustre, GPFS, a shared volume), or "
        "gather the shards before saving; check the mount on the named nodes.",
    ),
    CodeSpec(
        "ckpt_failed",
        Severity.FAIL,
        "With --ckpt-dir, a rank could not write its checkpoint shard, or read back a shard that "
        "differs from what was written.",
        "Check the directory's permissions and free space on the named nodes, and the "
        "filesystem's health (the evidence has each rank's error).",
    ),
    CodeSpec(
        "code_mismatch",
        Severity.FAIL,
        "With --code DIR, the code in DIR is not the same on every node (git: another HEAD, or "
        "other uncommitted or untracked files; a plain directory: other file contents): the "
        "nodes whose code differs from the majority's are named, or each node's when no "
        "majority exists.",
        "Sync the code on the named nodes: `git -C DIR status` and `git -C DIR log -1` there "
        "show how it differs; check out the same commit, or rsync the tree from a good node, or "
        "keep the code on a filesystem every node mounts.",
    ),
    CodeSpec(
        "path_missing",
        Severity.FAIL,
        "A path given with --check-path or --code does not exist, or cannot be read, on the named nodes.",
        "Mount or sync the path on the named nodes (`ls -ld PATH`, `findmnt -T PATH` there show "
        "a mount that did not come up or permissions that differ), or copy it from a node that "
        "has it.",
    ),
    CodeSpec(
        "path_differs",
        Severity.WARN,
        "With --check-path, a path is not the same on every node: a file of another size, a "
        "directory with another number of entries or total size (over the levels every node "
        "listed whole when a listing was cut short), or a file on some nodes and a directory on "
        "others.",
        "Compare the path on the named nodes with the others (ls -la, du -s, findmnt -T): a "
        "different mount, a copy that did not finish, or files written on one node only; sync "
        "it or use one shared filesystem.",
    ),
    CodeSpec(
        "tuning_recommendation",
        Severity.INFO,
        "In the settings sweep (--sweep) a setting was faster than the defaults by more than 5% "
        "and by more than the noise between rounds (the defaults' own spread, or an A/A "
        "setting's gap), and ahead in every interleaved round: overall, or for one size band.",
        "Export the setting's variables on every node before torchrun (the fix gives the lines); "
        "a band-only gain trades against the other sizes, which the evidence lists.",
    ),
    CodeSpec(
        "sweep_inconclusive",
        Severity.INFO,
        "The settings sweep cannot tell the settings apart: the noise between rounds (the "
        "defaults' own spread, or the gap an A/A setting equal to the defaults showed) is above "
        "the 5% a recommendation needs, so it neither recommends a setting nor says to keep the "
        "defaults.",
        "Measure again with more rounds (--sweep-repeats), more iterations per size (-n), fewer "
        "ranks per CPU core or GPU, on a quieter machine.",
    ),
    CodeSpec(
        "sweep_setting_ignored",
        Severity.WARN,
        "NCCL did not apply a swept NCCL_* variable: its log never says it read it, the "
        "algorithms or protocols it chose contradict it, or it warned about it (GPU runs, from "
        "NCCL's own ENV and TUNING log lines).",
        "Check the name and value against your NCCL version's documentation; that setting's "
        "numbers measure the defaults.",
    ),
    CodeSpec(
        "sweep_variant_failed",
        Severity.WARN,
        "A variant of a sweep (one interface of the per-NIC sweep, one NCCL setting) could "
        "not run a job in fresh processes before its deadline: it would not work for training.",
        "Read the variant's error in the evidence; do not use that interface or setting.",
    ),
    CodeSpec(
        "straggler_rank",
        Severity.WARN,
        "A rank is slower than the median rank at the same fixed work (a training-like step; on "
        "GPUs also matmul, memory and host-device copies, the last only among ranks bound to their "
        "GPU's NUMA node): its score (median time / its time) "
        "is below 0.9, or below 0.75 for fail (--straggler-warn, --straggler-fail, or an --expect "
        "file's [stragglers] scores, which replace them).",
        "Check that rank's GPU or CPU cores (clocks, throttling, affinity, other processes); the "
        "evidence names the slowest kernel.",
    ),
    CodeSpec(
        "straggler_node",
        Severity.WARN,
        "More than half of one node's ranks are stragglers: the node is named instead of its "
        "ranks (a node-wide cause: CPU quota, power cap, noisy neighbour, thermal).",
        "Look at the node's host and GPU health rows; drain the node if the cause cannot be removed.",
    ),
    CodeSpec(
        "slow_link",
        Severity.WARN,
        "A link (node pair, or ring neighbours rank -> rank+1) ran below half of what links of its "
        "kind reach (their upper quartile), fail below a fifth, or (fail) below an --expect file's "
        "[links] bound. When every slow link touches one node, that node is named.",
        "Check the named node's NIC and link (ethtool: speed, errors; the cable and switch port).",
    ),
    CodeSpec(
        "host_contention",
        Severity.WARN,
        "The named node is busy with work that is not this job: processes outside the job "
        "using CPU, memory pressure or swapping (the load average is shown, not judged: it counts "
        "the job's own threads).",
        "Stop or move the named processes (the evidence lists the top ones), or drain the node.",
    ),
    CodeSpec(
        "gpu_throttled",
        Severity.WARN,
        "A GPU is clocked down for thermal, power or hardware-slowdown reasons (NVML throttle reasons).",
        "Check cooling, power capping (nvidia-smi -q -d PERFORMANCE,POWER) and the node's BMC logs.",
    ),
    CodeSpec(
        "gpu_ecc_errors",
        Severity.FAIL,
        "A GPU reports uncorrectable ECC errors, or retired / remapped rows beyond the threshold.",
        "Drain the node and run the vendor's diagnostics (dcgmi diag -r 3); reset or replace the GPU.",
    ),
    CodeSpec(
        "gpu_pcie_degraded",
        Severity.WARN,
        "A GPU's PCIe link runs at a lower generation or width than its maximum.",
        "Reseat the GPU or riser, check the slot and BIOS PCIe settings.",
    ),
    CodeSpec(
        "gpu_unhealthy",
        Severity.FAIL,
        "A GPU is in a bad state NVML reports directly: a pending row remap or page retirement, "
        "an inactive NVLink, or NVML itself failing for that GPU.",
        "Drain the node; reset the GPU (nvidia-smi -r) or reboot, and replace it if it repeats.",
    ),
    CodeSpec(
        "peer_unreachable",
        Severity.FAIL,
        "explain: ranks could not connect to a peer or lost it (refused, timed out, reset, closed) "
        "during NCCL/Gloo init or mid-run; usually a consequence when another rank died first.",
        "If a rank crashed first, fix that; otherwise open the ephemeral ports between the nodes "
        "(firewall) and check NCCL_SOCKET_IFNAME / GLOO_SOCKET_IFNAME on every node.",
    ),
    CodeSpec(
        "master_port_in_use",
        Severity.FAIL,
        "explain: the rendezvous store could not listen on the master port: another process "
        "(often a previous job that did not exit) holds it.",
        "Use another --master-port, or stop the process holding it (ss -ltnp 'sport = :PORT').",
    ),
    CodeSpec(
        "collective_timeout",
        Severity.FAIL,
        "explain: the collective watchdog (ProcessGroupNCCL) or Gloo timed out: the message says "
        "which ranks timed out on which collective and sequence number; the ranks whose sequence "
        "number is behind are the suspects.",
        "Look at the suspect ranks (py-spy dump, their own errors): a rank that crashed, hung or "
        "took another code path; raise the timeout only if the step is legitimately slow.",
    ),
    CodeSpec(
        "collective_mismatch",
        Severity.FAIL,
        "explain: ranks called different collectives, in a different order or with different "
        "shapes (torch's collective fingerprint check or desync report).",
        "Make every rank call the same collectives in the same order with the same shapes; "
        "TORCH_DISTRIBUTED_DEBUG=DETAIL names the call.",
    ),
    CodeSpec(
        "ib_error",
        Severity.FAIL,
        "explain: InfiniBand/RoCE failed: a work completion error (its ibv_wc_status code is "
        "explained), a QP or GID problem, or a verbs call that failed.",
        "Check the HCA ports (ibstat), cables and switch; on RoCE set NCCL_IB_GID_INDEX to the "
        "RoCE v2 GID and NCCL_IB_HCA to the ports that are up.",
    ),
    CodeSpec(
        "gpu_error",
        Severity.FAIL,
        "explain: a GPU or CUDA failure surfaced in the job: out of memory, invalid device "
        "ordinal, no kernel image for the GPU, an Xid/ECC error, an illegal access, or failing "
        "P2P between GPUs (ACS/IOMMU).",
        "The message's fix is specific to the error; for P2P hangs disable ACS / set the IOMMU "
        "to passthrough, or confirm with NCCL_P2P_DISABLE=1.",
    ),
    CodeSpec(
        "shm_too_small",
        Severity.FAIL,
        "explain: shared memory (/dev/shm) ran out: NCCL could not create its segment, or torch "
        "could not put a tensor there (containers default to 64 MB).",
        "Run the container with --shm-size=16g (or --ipc=host); on Kubernetes mount an emptyDir "
        "with medium Memory at /dev/shm.",
    ),
    CodeSpec(
        "rank_mismatch",
        Severity.FAIL,
        "explain: the ranks disagree on the world size, or a rank number is used twice or is out "
        "of range (NCCL's bootstrap or torch's init says so).",
        "Start every node with the same --nnodes and --nproc-per-node and its own --node-rank; "
        "do not reuse a rendezvous id across jobs.",
    ),
    CodeSpec(
        "rank_killed",
        Severity.FAIL,
        "explain: a rank was killed by a signal (SIGKILL / exit -9, the OOM killer, the "
        "scheduler): it left no Python traceback.",
        "Check dmesg / the scheduler's log on the named host for the OOM killer or a time or "
        "memory limit; reduce host memory use or ask for more.",
    ),
    CodeSpec(
        "dataloader_worker_died",
        Severity.FAIL,
        "explain: a DataLoader worker process died (killed by a signal, a bus error - which "
        "PyTorch blames on too little shared memory - or exited unexpectedly).",
        "Killed: host memory ran out (fewer num_workers); Bus error: /dev/shm is too small; "
        "otherwise run with num_workers=0 to see the worker's own error.",
    ),
    CodeSpec(
        "unexplained_failure",
        Severity.FAIL,
        "explain: the logs show a failure (a traceback, an error line) that no signature in the "
        "catalogue names; the evidence holds the last error lines. The exit code is 3.",
        "Start from the last error lines shown; if the cause is a known one, a signature for it "
        "is welcome (nccldoctor/explain/signatures.py).",
    ),
    CodeSpec(
        "regression",
        Severity.WARN,
        "--baseline / nccldoctor compare: a probe's busbw or latency, a node's compute score, a "
        "link or DDP tokens/s is worse than the baseline run by more than both runs' own noise "
        "(their spread between ranks, modes, sizes and rounds, times --regression-noise); fail "
        "when also worse by more than --regression-fail percent (default 20).",
        "Compare the two runs (nccldoctor compare OLD NEW): a probe worse at every size with its "
        "links points at the network path (interface, transport, link speed: see the network "
        "section); a node's score or links at that node. If the change is intended (new settings "
        "or hardware), take this run as the new baseline.",
    ),
    CodeSpec(
        "baseline_not_comparable",
        Severity.WARN,
        "--baseline / nccldoctor compare: the two runs cannot be compared (different ranks, nodes, "
        "backend, device, dtype, torch or NCCL version, nothing measured in both, or a baseline "
        "that did not finish), so no regression was judged; the message says what differs.",
        "Take the baseline with the same job shape and versions as the runs it should judge, or "
        "point --baseline at such a run.",
    ),
    CodeSpec(
        "probe_skipped",
        Severity.INFO,
        "A probe did not run because this job cannot run it (e.g. send/recv needs two ranks).",
        "Nothing to fix; run with more ranks to measure it.",
    ),
]

CATALOG: dict[str, CodeSpec] = {spec.code: spec for spec in _SPECS}

# Codes that mean the run did not finish: the verdict is `error` and the exit code 3.
INCOMPLETE_CODES = frozenset(
    {"rank_timeout", "rank_crashed", "rank_frozen", "run_interrupted", "collective_error"}
)


@dataclass
class Finding:
    code: str
    severity: Severity
    message: str
    nodes: list[int] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{**data, "severity": Severity(data["severity"])})


def make_finding(
    code: str,
    message: str,
    *,
    ranks: Iterable[int] = (),
    nodes: Iterable[int] = (),
    evidence: dict[str, Any] | None = None,
    fix: str | None = None,
    severity: Severity | None = None,
) -> Finding:
    """A finding for a catalogued code; severity and fix default to the catalogue's."""
    spec = CATALOG[code]
    return Finding(
        code=code,
        severity=severity or spec.severity,
        message=message,
        nodes=sorted(set(nodes)),
        ranks=sorted(set(ranks)),
        evidence=evidence or {},
        fix=fix or spec.fix,
    )


_SEVERITY_ORDER = {Severity.INFO: 0, Severity.WARN: 1, Severity.FAIL: 2}


def verdict(findings: Iterable[Finding], complete: bool) -> str:
    """pass | warn | fail | error: `error` when the run did not complete, else the worst severity."""
    if not complete:
        return "error"
    worst = max((_SEVERITY_ORDER[f.severity] for f in findings), default=0)
    return {0: "pass", 1: "warn", 2: "fail"}[worst]


EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3


def exit_code(verdict_: str, strict: bool = False) -> int:
    """0 pass (and warn unless strict), 1 fail, 3 incomplete. Usage errors (2) never get here."""
    if verdict_ == "error":
        return EXIT_INCOMPLETE
    if verdict_ == "fail" or (verdict_ == "warn" and strict):
        return EXIT_FAIL
    return EXIT_PASS
