"""Namespaces as nodes: NICs on bridges, shaped links, firewalls, slow CPUs, torchrun on each.

    with Cluster(nodes=2, nics=("fast0", "slow0")) as cluster:
        cluster.shape("slow0", mbit=200)                 # every node's slow0, both directions
        cluster.block_ports(node=1, low=40000, high=40100)
        run = cluster.torchrun(nproc=2, args=["--probes", "all_reduce"], out_dir=tmp)

Topology. A switch namespace holds one bridge per NIC name; every node namespace has one
veth per NIC name plugged into that bridge, NIC k on subnet 10.213.k.0/24 (node i is
10.213.k.(i+1)). Each node also has a decoy `docker0` bridge with the same address
(10.213.255.1/24) on every node, as real hosts do. Processes run through
`ip netns exec` (which bind-mounts /etc/netns/NAME/hosts over /etc/hosts) and
`unshare --uts --pid --fork --mount-proc`, so a node has its own hostname, its own /etc/hosts
and sees only its own processes. Hostnames resolve, on every node, to the address of the
NIC named by `hosts_nic`.

Faults: `shape` (tc tbf on both ends of a veth: netem does not exist on these kernels),
`block_ports` (iptables in the node: drop NEW inbound TCP to a range, replies still flow),
`cpu_quota` (a cgroup v1 cpu.cfs_quota_us or v2 cpu.max that the node's processes join),
`signal_rank` (kill or SIGSTOP one rank's process).

No traffic leaves these namespaces: the addresses exist nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SUBNET_PREFIX = "10.213"
MAX_NODES = 8
DECOY_ADDRESS = f"{SUBNET_PREFIX}.255.1/24"
CGROUP_ROOT = Path("/sys/fs/cgroup")
MASTER_PORT = 29400
RUN_MARKER = "NCCLDOCTOR_CLUSTER_RUN"  # set in every process a cluster starts, to find them again


# `ip netns exec` mounts a fresh sysfs over /sys, which hides the cgroup filesystems below
# /sys/fs/cgroup: a node process could not read its own cgroup's CPU throttling, as every real
# node can (nccldoctor.cpupressure). Each node mounts the CPU controller's view back, in its own
# mount namespace (the same hierarchy as the host's, so a node's quota shows in its cpu.stat).
# Best effort: a node whose view cannot be mounted still runs (it reads no throttling, as before).
_CGROUP_VIEW = (
    "{ mount -t tmpfs nccldoctor-cgroup /sys/fs/cgroup && mkdir -p /sys/fs/cgroup/cpu && "
    "mount -t cgroup -o cpu cpu /sys/fs/cgroup/cpu; } 2>/dev/null; "
    if (CGROUP_ROOT / "cpu").is_dir()
    else "mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; "
)


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def cluster_unavailable_reason() -> str | None:
    """Why the bed cannot be built here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc, iptables, cgroups)"
    for tool in ("ip", "tc", "iptables", "unshare"):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (apt-get install iproute2 iptables util-linux)"
    probe = f"ncdprobe{secrets.token_hex(3)}"
    made = _sh("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create network namespaces: {made.stderr.strip()}"
    _sh("ip", "netns", "del", probe, check=False)
    return None


@dataclass
class Node:
    index: int
    netns: str
    hostname: str
    addresses: dict[str, str]  # NIC name -> IPv4 address


@dataclass
class ClusterRun:
    """What `Cluster.torchrun` saw: per-node exit codes and output, and the report folder."""

    returncodes: dict[int, int]
    logs: dict[int, str]
    seconds: float
    out_dir: Path
    timed_out: bool = False

    @property
    def report(self) -> dict:
        return json.loads((self.out_dir / "report.json").read_text())

    def findings(self, code: str) -> list[dict]:
        return [f for f in self.report["findings"] if f["code"] == code]


@dataclass
class Cluster:
    nodes: int = 2
    nics: tuple[str, ...] = ("fast0", "slow0")
    hosts_nic: str | None = None  # hostnames resolve to this NIC's address (default: the first)
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    members: list[Node] = field(default_factory=list, init=False)
    _cgroups: list[Path] = field(default_factory=list, init=False)
    _cgroup_of: dict[int, Path] = field(default_factory=dict, init=False)
    _procs: list[subprocess.Popen] = field(default_factory=list, init=False)

    # -- life cycle ----------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        # 8: interface names v<run_id><node><nic> stay within Linux's 15 characters up to 10
        # nodes, addresses 10.213.<nic>.<node+1> up to 254; 8 namespaces on 2 cores is the most
        # the machines this runs on can schedule within a run's deadline (benchmarks/eight_nodes.py).
        if not 2 <= self.nodes <= MAX_NODES or not self.nics:
            raise ValueError(f"a cluster has 2..{MAX_NODES} nodes and at least one NIC")
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    @property
    def switch(self) -> str:
        return f"ncd{self.run_id}sw"

    def _build(self) -> None:
        _sh("ip", "netns", "add", self.switch)
        _sh("ip", "-n", self.switch, "link", "set", "lo", "up")
        for k in range(len(self.nics)):
            _sh("ip", "-n", self.switch, "link", "add", f"br{k}", "type", "bridge")
            _sh("ip", "-n", self.switch, "link", "set", f"br{k}", "up")
        for i in range(self.nodes):
            self.members.append(self._add_node(i))
        hosts_nic = self.hosts_nic or self.nics[0]
        lines = ["127.0.0.1 localhost"] + [f"{n.addresses[hosts_nic]} {n.hostname}" for n in self.members]
        for node in self.members:
            etc = Path("/etc/netns") / node.netns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text("\n".join(lines) + "\n")

    def _add_node(self, i: int) -> Node:
        netns = f"ncd{self.run_id}n{i}"
        _sh("ip", "netns", "add", netns)
        _sh("ip", "-n", netns, "link", "set", "lo", "up")
        addresses = {}
        for k, nic in enumerate(self.nics):
            node_end, switch_end = f"v{self.run_id}{i}{k}", f"s{self.run_id}{i}{k}"
            _sh("ip", "link", "add", node_end, "type", "veth", "peer", "name", switch_end)
            _sh("ip", "link", "set", node_end, "netns", netns)
            _sh("ip", "link", "set", switch_end, "netns", self.switch)
            _sh("ip", "-n", self.switch, "link", "set", switch_end, "master", f"br{k}")
            _sh("ip", "-n", self.switch, "link", "set", switch_end, "up")
            _sh("ip", "-n", netns, "link", "set", node_end, "name", nic)
            address = f"{SUBNET_PREFIX}.{k}.{i + 1}"
            _sh("ip", "-n", netns, "addr", "add", f"{address}/24", "dev", nic)
            _sh("ip", "-n", netns, "link", "set", nic, "up")
            addresses[nic] = address
        _sh("ip", "-n", netns, "link", "add", "docker0", "type", "bridge")
        _sh("ip", "-n", netns, "addr", "add", DECOY_ADDRESS, "dev", "docker0")
        _sh("ip", "-n", netns, "link", "set", "docker0", "up")
        return Node(index=i, netns=netns, hostname=f"node{i}-{self.run_id}", addresses=addresses)

    def teardown(self) -> None:
        """Kill what we started, then remove namespaces, /etc/netns entries and cgroups."""
        self._kill_all()
        for node in self.members:
            _sh("ip", "netns", "del", node.netns, check=False)
            shutil.rmtree(Path("/etc/netns") / node.netns, ignore_errors=True)
        for i in range(self.nodes):  # nodes half-built before a failure
            _sh("ip", "netns", "del", f"ncd{self.run_id}n{i}", check=False)
            shutil.rmtree(Path("/etc/netns") / f"ncd{self.run_id}n{i}", ignore_errors=True)
        _sh("ip", "netns", "del", self.switch, check=False)
        for group in self._cgroups:
            self._remove_cgroup(group)
        self._cgroups.clear()

    def _kill_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in psutil.process_iter():  # anything that escaped its process group
            try:
                if proc.environ().get(RUN_MARKER) == self.run_id:
                    proc.kill()
            except (psutil.Error, OSError):
                continue
        for proc in self._procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self._procs.clear()

    # -- faults ---------------------------------------------------------------------------------
    def shape(self, nic: str, mbit: float, nodes: list[int] | None = None) -> None:
        """Limit `nic` of the given nodes (default all) to `mbit` in both directions (tc tbf)."""
        k = self.nics.index(nic)
        rate_bytes = mbit * 1e6 / 8
        burst = max(64 * 1024, int(rate_bytes / 250))  # at least one 4 ms tick's worth
        for i in nodes if nodes is not None else range(self.nodes):
            tbf = ["root", "tbf", "rate", f"{mbit}mbit", "burst", str(burst), "latency", "100ms"]
            _sh("ip", "netns", "exec", self.members[i].netns, "tc", "qdisc", "replace", "dev", nic, *tbf)
            _sh(
                "ip",
                "netns",
                "exec",
                self.switch,
                "tc",
                "qdisc",
                "replace",
                "dev",
                f"s{self.run_id}{i}{k}",
                *tbf,
            )

    def block_ports(self, node: int, low: int, high: int) -> None:
        """On `node`, drop new inbound TCP connections to ports low..high (stateful: replies flow)."""
        _sh(
            "ip",
            "netns",
            "exec",
            self.members[node].netns,
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            f"{low}:{high}",
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "DROP",
        )

    def partition(self, node: int) -> None:
        """Cut `node` off the others mid-run: drop every packet in and out of its NICs (its
        loopback still works), as a switch port or a cable that fails."""
        netns = self.members[node].netns
        for chain, side in (("INPUT", "-i"), ("OUTPUT", "-o")):
            _sh("ip", "netns", "exec", netns, "iptables", "-I", chain, "!", side, "lo", "-j", "DROP")

    def processes(self) -> list[psutil.Process]:
        """Every process this cluster's runs started, on any node, still there (zombies too)."""
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if proc.environ().get(RUN_MARKER) == self.run_id:
                    found.append(proc)
        return found

    def torchrun_process(self, node: int) -> psutil.Process:
        """The torchrun (elastic agent) of `node`, to signal it as Ctrl-C or Slurm would."""
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                cmdline = proc.cmdline()
                if "torch.distributed.run" in cmdline and f"--node-rank={node}" in cmdline:
                    return proc
        raise LookupError(f"no torchrun of node {node} in cluster run {self.run_id}")

    def cpu_quota(self, node: int, cores: float, period_us: int = 100_000) -> None:
        """Processes started on `node` from now on get `cores` CPUs' worth of time (e.g. 0.2) in
        every `period_us`; a burst shorter than the quota runs at full speed, so work measured in
        short steps needs a short period to be slowed."""
        period = period_us
        quota = max(1000, int(cores * period))
        name = f"nccldoctor-{self.run_id}-n{node}"
        if (CGROUP_ROOT / "cpu").is_dir():  # cgroup v1
            group = CGROUP_ROOT / "cpu" / name
            group.mkdir(exist_ok=True)
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(quota))
        else:  # cgroup v2
            group = CGROUP_ROOT / name
            group.mkdir(exist_ok=True)
            (group / "cpu.max").write_text(f"{quota} {period}")
        self._cgroups.append(group)
        self._cgroup_of[node] = group

    @staticmethod
    def _remove_cgroup(group: Path) -> None:
        for _ in range(50):
            try:
                group.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # processes still leaving
                time.sleep(0.1)

    def rank_process(self, rank: int) -> psutil.Process:
        """The process of global rank `rank` (found by the run marker and RANK)."""
        for proc in psutil.process_iter():
            try:
                env = proc.environ()
            except (psutil.Error, OSError):
                continue
            if env.get(RUN_MARKER) == self.run_id and env.get("RANK") == str(rank):
                return proc
        raise LookupError(f"no process of rank {rank} in cluster run {self.run_id}")

    def signal_rank(self, rank: int, signum: int = signal.SIGKILL) -> None:
        self.rank_process(rank).send_signal(signum)

    # -- running things on nodes ------------------------------------------------------------
    def address(self, node: int, nic: str | None = None) -> str:
        return self.members[node].addresses[nic or self.nics[0]]

    def spawn(
        self,
        node: int,
        argv: list[str],
        env: dict[str, str] | None = None,
        log: Path | None = None,
        beside: list[str] | None = None,
        private_dir: str | None = None,
        binds: list[tuple[str, str]] | None = None,
    ) -> subprocess.Popen:
        """Start `argv` on `node`: its netns, hostname, /etc/hosts, PID space and cgroup.
        `beside`: a command started first in the background, in the same PID space (a
        neighbour process the node's tools can see); it dies with `argv`, the space's PID 1.
        `private_dir`: a fresh tmpfs mounted there for this node only (the node's own mount
        namespace), like a node-local disk behind a path every node has. `binds`: (source,
        target) directories bind-mounted for this node only, so one path can hold other files
        on one node (another copy of the code, a dataset with files missing)."""
        member = self.members[node]
        inner = " ".join(shlex.quote(a) for a in argv)
        neighbour = " ".join(shlex.quote(a) for a in beside) + " & " if beside else ""
        local = ""
        if private_dir:
            quoted = shlex.quote(private_dir)
            local = f"mkdir -p {quoted} && mount -t tmpfs nccldoctor-local {quoted} && "
        for source, target in binds or []:
            source, target = shlex.quote(source), shlex.quote(target)
            local += f"mkdir -p {target} && mount --bind {source} {target} && "
        script = f"{local}{_CGROUP_VIEW}hostname {member.hostname} && {neighbour}exec {inner}"
        cmd = [
            "ip",
            "netns",
            "exec",
            member.netns,
            "unshare",
            "--uts",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            script,
        ]
        group = self._cgroup_of.get(node)
        if group is not None:  # join the cgroup first; everything below inherits it
            cmd = ["sh", "-c", f'echo $$ > {group / "cgroup.procs"} && exec "$@"', "cgroup", *cmd]
        full_env = _clean_env() | (env or {}) | {RUN_MARKER: self.run_id}
        out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed by the caller's wait
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._procs.append(proc)
        return proc

    def spawn_output(self, node: int, argv: list[str], timeout: float = 60) -> str:
        """Run `argv` as a node process (hostname, /etc/hosts, PID space) and return its output."""
        with tempfile.NamedTemporaryFile("r", suffix=".log") as log:
            self.spawn(node, argv, log=Path(log.name)).wait(timeout=timeout)
            return Path(log.name).read_text()

    def run_on(self, node: int, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a short command on `node` and wait for it."""
        member = self.members[node]
        cmd = ["ip", "netns", "exec", member.netns, *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_clean_env())

    def launch(
        self,
        nproc: int,
        args: list[str],
        out_dir: Path,
        *,
        master_nic: str | None = None,
        env: dict[str, str] | None = None,
        node_env: dict[int, dict[str, str]] | None = None,
        target: list[str] | None = None,
        beside: dict[int, list[str]] | None = None,
        private_dir: str | None = None,
        binds: dict[int, list[tuple[str, str]]] | None = None,
    ) -> Launch:
        """Start `torchrun --nnodes N --node-rank i` on every node (rendezvous at node 0's
        `master_nic`) and return at once. `target` replaces `-m nccldoctor.bench --out DIR`;
        `beside[i]`: a process to run next to torchrun in node i's PID space (see spawn)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        master = self.address(0, master_nic)
        target = target or ["-m", "nccldoctor.bench", "--out", str(out_dir)]
        procs, logs = {}, {}
        for i in range(self.nodes):
            logs[i] = out_dir / f"node{i}.log"
            argv = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                f"--nnodes={self.nodes}",
                f"--node-rank={i}",
                f"--nproc-per-node={nproc}",
                f"--master-addr={master}",
                f"--master-port={MASTER_PORT}",
                *target,
                *args,
            ]
            node_env_i = (env or {}) | (node_env or {}).get(i, {})
            procs[i] = self.spawn(
                i,
                argv,
                env=node_env_i,
                log=logs[i],
                beside=(beside or {}).get(i),
                private_dir=private_dir,
                binds=(binds or {}).get(i),
            )
        return Launch(procs=procs, logs=logs, out_dir=out_dir, start=time.monotonic())

    def torchrun(
        self, nproc: int, args: list[str], out_dir: Path, *, timeout: float = 180, **launch_kw
    ) -> ClusterRun:
        """launch() and wait for every node, killing whatever is left at `timeout`."""
        return self.launch(nproc, args, out_dir, **launch_kw).wait(timeout)


@dataclass
class Launch:
    procs: dict[int, subprocess.Popen]
    logs: dict[int, Path]
    out_dir: Path
    start: float

    def wait_for_output(self, node: int, text: str, timeout: float) -> None:
        """Until `text` shows in node `node`'s output (rank 0's progress lines go there)."""
        give_up = time.monotonic() + timeout
        while text not in self.logs[node].read_text(errors="replace"):
            if time.monotonic() > give_up:
                raise TimeoutError(f"node {node} did not print {text!r} within {timeout} s")
            time.sleep(0.2)

    def wait(self, timeout: float) -> ClusterRun:
        timed_out = _wait_all(self.procs, self.start + timeout)
        return ClusterRun(
            returncodes={i: p.returncode for i, p in self.procs.items()},
            logs={i: path.read_text(errors="replace") for i, path in self.logs.items()},
            seconds=time.monotonic() - self.start,
            out_dir=self.out_dir,
            timed_out=timed_out,
        )


def _wait_all(procs: dict[int, subprocess.Popen], deadline: float) -> bool:
    timed_out = False
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return timed_out


def _clean_env() -> dict[str, str]:
    launcher = (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "GROUP_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "TORCHELASTIC_RUN_ID",
    )
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    env["PYTHONUNBUFFERED"] = "1"
    return env
