"""What NCCL says it did: version, network transport, interfaces and IB devices, from its INFO log.

nccldoctor predicts NCCL's choices (nccldoctor.net.interfaces); NCCL's own log says what it really chose.
With NCCL_DEBUG=INFO and NCCL_DEBUG_SUBSYS=INIT,NET,.., NCCL writes one line per event to stdout or to
NCCL_DEBUG_FILE (`%h`/`%p` in the name give one file per host/process), each line as
`host:pid:tid [cudaDev] NCCL INFO <message>`. Launchers put their own prefix in front (mpirun's
`[1,0]<stdout>:`, Ray's `(RayWorkerWrapper pid=.., ip=..)`, pdsh's `host: `), so a line is read
from the `NCCL INFO ` (or `NCCL WARN `) it contains; lines starting with `#` (nccl-tests' header,
fixture notes) are skipped.

The messages read, with NCCL's format strings; every spelling here occurs in the real logs of
NCCL 2.4 to 2.29 under tests/fixtures/nccl/ (older 2.2/2.3 spellings are not recognised):
- version: `NCCL version 2.19.3+cuda12.3` (init.cc, showVersion). A bare printf on stdout in older
  releases (and also an INFO line in one NCCL_DEBUG_FILE); an INFO line in 2.29.
- network: `Using network %s` (IB, Socket, or a plugin's name: IBext, IBext_v8, AWS Libfabric);
  recent releases also log `Initialized NET plugin %s` / `Assigned NET plugin %s to comm`
  (plugin/net.cc); channel lines end in `via NET/<name>/<dev>[/GDRDMA]`. NCCL 2.4 logs none of
  these: there the network is IB when NET/IB lists a device.
- socket transport: `NET/Socket : Using [0]eth0:10.0.0.1<0> [1]...` (transport/net_socket.cc). An
  IPv6 address holds colons (`[1]veth0:fe80::1%veth0<0>`): the name is what precedes the first one.
- bootstrap: `Bootstrap : Using eth0:10.0.0.1<0>`; a list `[0]eth0:..<0> [1]..` in 2.5-2.7 (the first
  is used), `Bootstrap: Using` in 2.29. NET/IB's out-of-band interface is the same choice.
- IB: `NET/IB : Using%s %s; OOB %s:%s` (transport/net_ib.cc) with devices ` [%d]%s:%d/%s`, e.g.
  `[0]mlx5_0:1/IB [1]mlx5_1:1/RoCE [RO]; OOB eth0:..` (` ; OOB` before [RO] existed, `/IB/SHARP`
  from HPC-X's plugin). None usable: `NET/IB : No device found.`; in recent releases also
  `Failed to initialize NET plugin IB` and `Failed to open libibverbs.so[.1]` (no rdma-core).
- plugin: `NET/Plugin: Loaded net plugin %s (v%d)`, or `Successfully loaded external [network]
  plugin <lib>`; "No plugin found" / "Could not find" mean the internal IB and Socket ones.
- variables: `NCCL_SOCKET_IFNAME set by environment to eth0` (integer ones end with a dot:
  `NCCL_IB_DISABLE set by environment to 1.`); plugins say `NCCL_SOCKET_IFNAME set to ..`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nccldoctor.findings import CATALOG, Finding, make_finding
from nccldoctor.net.infiniband import ib_off_on_purpose


@dataclass
class NcclLogSummary:
    """What one node's (or one process's) NCCL log says; all None/empty when it says nothing."""

    version: str | None = None  # "2.19.3"
    transport: str | None = None  # "IB", "Socket" or a plugin's network ("IBext_v8"): transports[0]
    socket_ifaces: list[str] = field(default_factory=list)  # NET/Socket's interfaces, in NCCL's order
    bootstrap_ifaces: list[str] = field(default_factory=list)  # Bootstrap's and NET/IB's OOB interface
    ib_devices: list[str] = field(default_factory=list)  # "mlx5_0:1", as NET/IB lists them
    ib_found: bool | None = None  # False: NET/IB found no usable device; None: the log does not say
    plugin: str | None = None  # the external NET plugin loaded ("NCCL RDMA Plugin v6")
    socket_ifname_env: str | None = None  # NCCL_SOCKET_IFNAME as NCCL read it
    transports: list[str] = field(default_factory=list)  # every network named: processes may differ
    ib_link_layers: dict[str, str] = field(default_factory=dict)  # "mlx5_0:1" -> "IB" | "RoCE"
    env: dict[str, str] = field(default_factory=dict)  # every "NCCL_X set by environment to Y"

    @property
    def uses_sockets(self) -> bool:
        """Some process carried inter-node traffic over NCCL's socket transport."""
        return any(t.lower() == "socket" for t in self.transports)

    @property
    def iface(self) -> str | None:
        """The interface NCCL's own sockets bound (bootstrap, OOB): the first one it logged."""
        return next(iter(self.bootstrap_ifaces or self.socket_ifaces), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NcclLogSummary:
        return cls(**data)


# --- parsing -------------------------------------------------------------------------------

_MESSAGE = re.compile(r"NCCL (?:INFO|WARN) (.*)")
_VERSION = re.compile(r"\bNCCL version (\d+\.\d+\.\d+)")
# "[0]eth0:10.0.0.1<0>", "eth0:10.0.0.1<0>", "[1]veth0:fe80::1%veth0<0>", "[0]enp41s0f1:<0>"
_IFACE = re.compile(r"(?:\[\d+\])?([^\s:\[\]]+):\S*")
_IB_DEVICE = re.compile(r"\[\d+\]([^\s:\[\]]+:\d+)/(IB|RoCE)\b")
# Messages that name the network in use, the surest first: the first kind present decides.
_NETWORK_KINDS = ("using", "assigned", "initialized", "channel")


@dataclass
class _Scan:
    """Facts in log order, resolved into a summary once the whole text is read."""

    version: str | None = None
    networks: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in _NETWORK_KINDS})
    socket_ifaces: list[str] = field(default_factory=list)
    bootstrap_ifaces: list[str] = field(default_factory=list)
    ib_links: dict[str, str] = field(default_factory=dict)
    ib_missing: bool = False
    plugins: list[str] = field(default_factory=list)
    plugin_libs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ifname_set: list[str] = field(default_factory=list)


def _ifaces(text: str) -> list[str]:
    return _IFACE.findall(text)


def _network(kind: str) -> Callable[[_Scan, re.Match[str]], None]:
    return lambda scan, m: scan.networks[kind].append(m[1].strip())


def _ib_using(scan: _Scan, m: re.Match[str]) -> None:
    scan.ib_links.update(_IB_DEVICE.findall(m[1]))
    scan.bootstrap_ifaces += _ifaces(m[2])[:1]


def _env(scan: _Scan, m: re.Match[str]) -> None:
    scan.env.setdefault(m[1], m[2].strip().removesuffix("."))


def _ib_missing(scan: _Scan, _m: re.Match[str]) -> None:
    scan.ib_missing = True


# Matched at the start of the message (after "NCCL INFO "), in this order; the first match wins.
_RULES: list[tuple[re.Pattern[str], Callable[[_Scan, re.Match[str]], None]]] = [
    (re.compile(r"Using network (.+)"), _network("using")),
    (re.compile(r"Assigned NET plugin (.+) to comm"), _network("assigned")),
    (re.compile(r"Initialized NET plugin (.+)"), _network("initialized")),
    (re.compile(r".* via NET/([^/]+)/\d"), _network("channel")),
    (re.compile(r"NET/Socket ?: Using(.*)"), lambda s, m: s.socket_ifaces.extend(_ifaces(m[1]))),
    (re.compile(r"Bootstrap ?: Using(.*)"), lambda s, m: s.bootstrap_ifaces.extend(_ifaces(m[1]))),
    (re.compile(r"NET/IB ?: Using(.*?);\s*OOB (.*)"), _ib_using),
    (
        re.compile(
            r"NET/IB ?: No device found|Failed to initialize NET plugin IB\b|Failed to open libibverbs"
        ),
        _ib_missing,
    ),
    (
        re.compile(r"NET/Plugin ?: Loaded net plugin (.+?)(?: \(v\d+\))?$"),
        lambda s, m: s.plugins.append(m[1]),
    ),
    (
        re.compile(r"Successfully loaded external (?:network )?plugin (.+)"),
        lambda s, m: s.plugin_libs.append(m[1].strip()),
    ),
    (re.compile(r"(NCCL_\w+) set by environment to (.*)"), _env),
    (re.compile(r"NCCL_SOCKET_IFNAME set to (\S+)"), lambda s, m: s.ifname_set.append(m[1])),
]


def _scan_line(scan: _Scan, line: str) -> None:
    if scan.version is None and (version := _VERSION.search(line)):
        scan.version = version[1]
    message = _MESSAGE.search(line)
    if message is None:
        return
    for pattern, handle in _RULES:
        if m := pattern.match(message[1].rstrip()):
            handle(scan, m)
            return


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _transports(scan: _Scan) -> list[str]:
    """The networks in use, from the surest kind of message present."""
    for kind in _NETWORK_KINDS:
        if scan.networks[kind]:
            return _unique(scan.networks[kind])
    if scan.ib_links:  # NCCL 2.4 names no network; it used IB whenever NET/IB listed a device
        return ["IB"]
    return ["Socket"] if scan.ib_missing and scan.socket_ifaces else []


def _summary(scan: _Scan) -> NcclLogSummary:
    transports = _transports(scan)
    ifname = scan.env.get("NCCL_SOCKET_IFNAME") or next(iter(scan.ifname_set), None)
    return NcclLogSummary(
        version=scan.version,
        transport=transports[0] if transports else None,
        socket_ifaces=_unique(scan.socket_ifaces),
        bootstrap_ifaces=_unique(scan.bootstrap_ifaces),
        ib_devices=list(scan.ib_links),
        ib_found=True if scan.ib_links else (False if scan.ib_missing else None),
        plugin=next(iter(scan.plugins + scan.plugin_libs), None),
        socket_ifname_env=ifname,
        transports=transports,
        ib_link_layers=dict(scan.ib_links),
        env=dict(scan.env),
    )


def parse_nccl_log(text: str) -> NcclLogSummary:
    """Summarise NCCL INFO log text (one process's file, or many processes' lines interleaved)."""
    scan = _Scan()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            _scan_line(scan, line)
    return _summary(scan)


def merge_summaries(summaries: Iterable[NcclLogSummary]) -> NcclLogSummary:
    """One summary for a node from its processes' summaries (NCCL_DEBUG_FILE=...%p: a file each).

    Lists are joined without repeats; the version, plugin and socket variable are the first one
    known (only one process logs the version into its file); IB counts as found if any process
    found a device.
    """
    parts = list(summaries)
    transports = _unique(t for s in parts for t in s.transports)
    found = [s.ib_found for s in parts if s.ib_found is not None]
    links = {dev: layer for s in reversed(parts) for dev, layer in s.ib_link_layers.items()}
    return NcclLogSummary(
        version=next((s.version for s in parts if s.version), None),
        transport=transports[0] if transports else None,
        socket_ifaces=_unique(i for s in parts for i in s.socket_ifaces),
        bootstrap_ifaces=_unique(i for s in parts for i in s.bootstrap_ifaces),
        ib_devices=_unique(d for s in parts for d in s.ib_devices),
        ib_found=any(found) if found else None,
        plugin=next((s.plugin for s in parts if s.plugin), None),
        socket_ifname_env=next((s.socket_ifname_env for s in parts if s.socket_ifname_env), None),
        transports=transports,
        ib_link_layers=links,
        env={k: v for s in reversed(parts) for k, v in s.env.items()},
    )


def parse_nccl_log_files(paths: Iterable[str | Path]) -> NcclLogSummary:
    """Merge the summaries of several log files; a file that cannot be read is skipped.

    Skipped, not raised: a process that died before NCCL initialised leaves no file, and the other
    files still tell what NCCL did on the node.
    """
    summaries = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        summaries.append(parse_nccl_log(text))
    return merge_summaries(summaries)


# --- judging -------------------------------------------------------------------------------


def _fell_back(
    node: int, log: NcclLogSummary, ib_present: Mapping[int, bool], env: Mapping[int, Mapping[str, str]]
) -> bool:
    wanted_off = ib_off_on_purpose(env.get(node, {})) or ib_off_on_purpose(log.env)
    return log.uses_sockets and bool(ib_present.get(node)) and not wanted_off


def _fallback_fix(logs: Mapping[int, NcclLogSummary], nodes: list[int]) -> str:
    blind = [n for n in nodes if logs[n].ib_found is False]
    if not blind:
        return (
            "NET/IB listed devices but NCCL chose sockets: check NCCL_NET and NCCL_NET_PLUGIN; "
            + CATALOG["nccl_transport_fallback"].fix
        )
    where = ", ".join(map(str, blind))
    return (
        f"NCCL's NET/IB found no usable device on node(s) {where}: check that ibstat shows the ports "
        "Active, that rdma-core (libibverbs) is installed where NCCL runs (containers also need "
        "/dev/infiniband), and that NCCL_IB_HCA, if set, names these devices; "
        + CATALOG["nccl_transport_fallback"].fix
    )


def _transport_fallback(
    logs: Mapping[int, NcclLogSummary],
    ib_present: Mapping[int, bool],
    env: Mapping[int, Mapping[str, str]],
    ib_devices: Mapping[int, Sequence[str]],
) -> list[Finding]:
    nodes = sorted(n for n, log in logs.items() if _fell_back(n, log, ib_present, env))
    if not nodes:
        return []
    devices = {n: list(ib_devices.get(n) or logs[n].ib_devices) for n in nodes}
    present = "; ".join(f"node {n}: {', '.join(devices[n]) or 'present'}" for n in nodes)
    return [
        make_finding(
            "nccl_transport_fallback",
            f"NCCL used its Socket transport on node(s) {', '.join(map(str, nodes))} although "
            f"InfiniBand/RoCE devices are there ({present}) and NCCL_IB_DISABLE is not set",
            nodes=nodes,
            evidence={
                "transport": {n: logs[n].transports for n in nodes},
                "ib_devices": devices,
                "nccl_ib_found": {n: logs[n].ib_found for n in nodes},
                "nccl_version": {n: logs[n].version for n in nodes},
                "plugin": {n: logs[n].plugin for n in nodes},
            },
            fix=_fallback_fix(logs, nodes),
        )
    ]


def _iface_unexpected(node: int, log: NcclLogSummary, predicted: str | None) -> list[Finding]:
    actual = log.iface
    if not predicted or not actual or actual == predicted:
        return []
    return [
        make_finding(
            "nccl_iface_unexpected",
            f"node {node}: NCCL bound its sockets to {actual}, but {predicted} was predicted from "
            "the node's interfaces and NCCL_SOCKET_IFNAME",
            nodes=[node],
            evidence={
                "predicted": predicted,
                "actual": actual,
                "nccl_bootstrap": log.bootstrap_ifaces,
                "nccl_socket": log.socket_ifaces,
                "socket_ifname_env": log.socket_ifname_env,
            },
            fix=f"export NCCL_SOCKET_IFNAME={predicted} on node {node} "
            f"(or NCCL_SOCKET_IFNAME={actual} if that is the interface you mean)",
        )
    ]


def judge_nccl(
    logs: Mapping[int, NcclLogSummary],
    ib_present: Mapping[int, bool],
    env: Mapping[int, Mapping[str, str]],
    predicted_iface: Mapping[int, str | None],
    ib_devices: Mapping[int, Sequence[str]] | None = None,
) -> list[Finding]:
    """Compare what NCCL's log says it did with what each node (keyed by node rank) has.

    `ib_present`: the node has a usable IB/RoCE port; `env`: the node's NCCL variables;
    `predicted_iface`: the interface nccldoctor predicted NCCL would use; `ib_devices` (optional):
    the node's IB ports by name ("mlx5_0:1") for the message, else those NCCL's log listed.
    A node missing from a mapping is not judged on what that mapping holds.
    """
    findings = _transport_fallback(logs, ib_present, env, ib_devices or {})
    for node in sorted(logs):
        findings += _iface_unexpected(node, logs[node], predicted_iface.get(node))
    return findings
