"""`nccldoctor preflight`: one node, before torchrun, in seconds. Will this node join the job?

No rendezvous, no process group, no CUDA context. It resolves --master-addr as torch's store
client does (getaddrinfo), tries one TCP connect to the master port, shows which local
interface the route to the master leaves through and which ones NCCL and Gloo would pick
(nccldoctor.net's rules, *_SOCKET_IFNAME) and judges them as the bench does, and compares
--nproc-per-node with the GPUs that NVML (read per GPU, nccldoctor.gpuhealth) and
CUDA_VISIBLE_DEVICES leave visible. The report follows the bench's report.json
contract: `results` is empty and a `preflight` section holds what each check saw.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nccldoctor.consistency.facts import read_versions
from nccldoctor.consistency.section import path_cell
from nccldoctor.consistency.trees import code_digest, judge_paths, path_summary
from nccldoctor.environment import relevant_env
from nccldoctor.errors import UsageError
from nccldoctor.findings import Finding, Severity, make_finding
from nccldoctor.gpuhealth import Gpus, count_gpus, count_visible  # noqa: F401 - preflight's API
from nccldoctor.net.interfaces import (
    SOCKET_VARIABLE,
    Choice,
    Iface,
    local_interfaces,
    real_nics,
    resolve_hostname,
)
from nccldoctor.net.inventory import NodeNet
from nccldoctor.net.judge import judge_choice, predict
from nccldoctor.net.routes import owner_of, route
from nccldoctor.net.sockets import OPEN, REFUSED, TIMEOUT, UNREACHABLE, connect_all
from nccldoctor.report import Report

CODE_BUDGET_S = 2.0  # as the bench's consistency phase
PATH_BUDGET_S = 1.0

# Linux resends a lost SYN after 1 s: 3 s lets one loss pass on an open path, and a filtered
# port costs only 3 s.
DEFAULT_TIMEOUT_S = 3.0
MAX_TIMEOUT_S = 300.0
# Which outcome wins when the master resolves to several addresses: torch's store client tries
# them in turn, so the job works if any one answers.
_OUTCOME_ORDER = {OPEN: 0, REFUSED: 1, TIMEOUT: 2, UNREACHABLE: 3}

T = TypeVar("T")


@dataclass(frozen=True)
class PreflightConfig:
    master_addr: str  # what torchrun will get as --master-addr
    master_port: int  # torchrun's --master-port: its rendezvous store listens there
    nproc_per_node: int | None = None  # None: not compared with the GPUs
    out: Path | None = None  # None: a new ./nccldoctor-out/preflight-<timestamp>/
    timeout_s: float = DEFAULT_TIMEOUT_S  # bound on each wait: a name lookup, the TCP connect
    quiet: bool = False  # print only findings and the verdict
    packages: tuple[str, ...] = ()  # --check-package: versions shown (compared by the bench)
    code: tuple[str, ...] = ()  # --code: digests shown, to compare by hand or with the bench
    paths: tuple[str, ...] = ()  # --check-path: must exist and be readable here

    def __post_init__(self) -> None:
        if not self.master_addr.strip():
            raise UsageError("--master-addr is empty: give the master node's host name or address")
        if not 1 <= self.master_port <= 65535:
            raise UsageError(f"--master-port: {self.master_port} is not a port (1-65535)")
        if self.nproc_per_node is not None and self.nproc_per_node < 1:
            raise UsageError(f"--nproc-per-node: {self.nproc_per_node} must be at least 1")
        if not 0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise UsageError(f"--timeout: {self.timeout_s:g} must be above 0 and at most {MAX_TIMEOUT_S:g} s")


# -- the master: name, port, route ------------------------------------------------------------
def _bounded(fn: Callable[[], T], timeout_s: float) -> T | None:
    """fn() in a daemon thread; None if it has not returned after timeout_s.

    A name lookup cannot be interrupted and may wait on a dead DNS server for tens of
    seconds; a daemon thread left behind does not hold up the exit.
    """
    box: list[T] = []
    thread = threading.Thread(target=lambda: box.append(fn()), daemon=True)
    thread.start()
    thread.join(timeout_s)
    return box[0] if box else None


def resolve(host: str, port: int, timeout_s: float) -> tuple[list[str], str | None]:
    """The master's addresses in getaddrinfo's order, or ([], why it did not resolve)."""

    def lookup() -> tuple[list[str], str | None]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, ValueError) as exc:  # ValueError: UnicodeError on a bad label, NUL bytes
            return [], str(exc)
        return list(dict.fromkeys(str(info[4][0]) for info in infos)), None

    found = _bounded(lookup, timeout_s)
    return found if found is not None else ([], f"no answer within {timeout_s:g} s (DNS slow or unreachable)")


def best_outcome(outcomes: dict[str, str]) -> tuple[str, str]:
    """(address, outcome) of the address that answered best; ties go to getaddrinfo's order."""
    order = list(outcomes)
    address = min(order, key=lambda a: (_OUTCOME_ORDER.get(outcomes[a], 4), order.index(a)))
    return address, outcomes[address]


def placement(address: str, ifaces: list[Iface]) -> str:
    """'loopback', 'local' (an address of this node: this node is the master) or 'remote'."""
    if ipaddress.ip_address(address.split("%", 1)[0]).is_loopback:
        return "loopback"
    return "local" if owner_of(address, ifaces) else "remote"


@dataclass
class MasterCheck:
    """What resolving and connecting to the master found."""

    host: str
    port: int
    timeout_s: float
    addresses: list[str] = field(default_factory=list)
    error: str | None = None  # why it did not resolve
    outcomes: dict[str, str] = field(default_factory=dict)  # address -> open/refused/timeout/...
    where: str | None = None  # placement() of the best address
    source: str | None = None  # this node's address on the route to the master
    iface: Iface | None = None  # the interface that owns `source`

    @property
    def best(self) -> tuple[str | None, str | None]:
        return best_outcome(self.outcomes) if self.outcomes else (None, None)


def check_master(host: str, port: int, timeout_s: float, ifaces: list[Iface]) -> MasterCheck:
    check = MasterCheck(host=host, port=port, timeout_s=timeout_s)
    check.addresses, check.error = resolve(host, port, timeout_s)
    if not check.addresses:
        return check
    results = connect_all([(a, port) for a in check.addresses], timeout_s)
    check.outcomes = {a: results[(a, port)] for a in check.addresses}
    address, _ = check.best
    check.where = placement(address, ifaces)
    check.source, check.iface = route(address, ifaces)
    return check


def judge_master(check: MasterCheck) -> list[Finding]:
    if not check.addresses:
        return [
            make_finding(
                "master_unresolvable",
                f"--master-addr {check.host} does not resolve on this node: {check.error}",
                evidence={"host": check.host, "error": check.error},
            )
        ]
    address, outcome = check.best
    named = check.host if check.host == address else f"{check.host} ({address})"
    target = f"{named} port {check.port}"
    evidence = {"host": check.host, "port": check.port, "outcomes": check.outcomes, "source": check.source}
    if outcome == OPEN:
        return []
    if outcome == REFUSED:
        return [
            make_finding(
                "master_not_listening",
                f"{target}: reachable, nothing listening yet (connection refused) — expected before launch",
                evidence=evidence,
                fix="Nothing to fix before launch; if torchrun already runs on the master, check "
                "--master-port there (a firewall REJECT rule also refuses).",
            )
        ]
    if outcome == TIMEOUT:
        message = (
            f"{target}: no answer within {check.timeout_s:g} s: filtered by a firewall, or the host is down"
        )
        fix = _timeout_fix(check)
    elif outcome == UNREACHABLE:
        message = f"{target}: no route to the host from this node (network or host unreachable)"
        fix = f"Check the route (ip route get {address}) and the interface shown, or use another address."
    else:
        message = f"{target}: the connection failed ({outcome})"
        fix = None
    return [make_finding("master_unreachable", message, evidence=evidence, fix=fix)]


def _timeout_fix(check: MasterCheck) -> str:
    if check.where == "remote" and check.iface is not None and check.iface.virtual:
        # No firewall rule helps while the packets never leave this host.
        return f"Fix the route first: it leaves through {check.iface.name} (see iface_virtual)."
    source = f" -s {check.source}" if check.source else ""
    rule = f"iptables -I INPUT -p tcp{source} --dport {check.port} -j ACCEPT"
    return f"On the master, open the port (and the ephemeral range) for this node: {rule}"


def judge_route(check: MasterCheck, ifaces: list[Iface]) -> list[Finding]:
    """The route to a remote master must leave the host: a bridge's subnet can shadow it."""
    iface = check.iface
    if check.where != "remote" or iface is None or not iface.virtual:
        return []
    address, _ = check.best
    real = ", ".join(real_nics(ifaces)) or "none"
    return [
        make_finding(
            "iface_virtual",
            f"the route to the master {address} leaves through {iface.name} ({check.source}), "
            f"which does not leave this host: the master's address lies on a local bridge's subnet",
            evidence={"address": address, "source": check.source, "interface": iface.name},
            fix=f"Use a master address on a real NIC's network (this node's real NICs: {real}), "
            f"or move {iface.name} to another subnet.",
        )
    ]


# -- the socket interfaces NCCL and Gloo would use ---------------------------------------------
def judge_backend(node: NodeNet, backend: str, choice: Choice, check: MasterCheck) -> list[Finding]:
    """iface_missing / iface_down / iface_virtual: the bench's judge (nccldoctor.net.judge), told
    what only preflight knows: where the master is, and the interface the route to it leaves by."""
    return judge_choice(node, backend, choice, _spans_nodes(check.where), toward_master=check.iface)


def _spans_nodes(where: str | None) -> bool | None:
    """A remote master proves the job spans nodes; a loopback one (or none) rules it out. On the
    master itself (a non-loopback master address) it probably does, but a single-node run
    cannot be ruled out: None, which the judge makes a warning."""
    if where == "local":
        return None
    return where == "remote"


def route_note(backend: str, choice: Choice, check: MasterCheck) -> str | None:
    """Not a finding: NCCL may rightly carry data on another NIC than the store's route."""
    if check.where != "remote" or check.iface is None or not choice.ifaces:
        return None
    if choice.ifaces[0].name == check.iface.name:
        return None
    used = choice.ifaces[0].name
    return f"{backend} would use {used}, but the route to the master leaves through {check.iface.name}"


def backends_to_judge(backend: str, env: dict[str, str]) -> list[str]:
    """The job's backend, plus any other whose variable the user set (they mean to use it)."""
    return [b for b in ("nccl", "gloo") if b == backend or env.get(SOCKET_VARIABLE[b])]


# -- GPUs --------------------------------------------------------------------------------------
def judge_gpus(nproc: int | None, gpus: Gpus) -> list[Finding]:
    """More ranks than GPUs: NCCL fails on the extra ones. Fewer: GPUs idle (info)."""
    if nproc is None or gpus.visible == 0 or nproc == gpus.visible:
        return []
    cvd = "" if gpus.cuda_visible_devices is None else f" (CUDA_VISIBLE_DEVICES={gpus.cuda_visible_devices})"
    evidence = {"nproc_per_node": nproc, "visible_gpus": gpus.visible, "nvml_gpus": gpus.physical}
    fix = f"torchrun --nproc-per-node {gpus.visible} ..., or fix CUDA_VISIBLE_DEVICES"
    if nproc > gpus.visible:
        message = (
            f"--nproc-per-node {nproc} but only {gpus.visible} GPU(s) visible here{cvd}: "
            "NCCL would fail on the extra ranks"
        )
        return [make_finding("gpu_count_mismatch", message, evidence=evidence, fix=fix)]
    message = (
        f"--nproc-per-node {nproc} uses {nproc} of {gpus.visible} GPUs visible here{cvd}: the rest stay idle"
    )
    return [make_finding("gpu_count_mismatch", message, evidence=evidence, fix=fix, severity=Severity.INFO)]


# -- the report --------------------------------------------------------------------------------
def collect_node(timeout_s: float) -> NodeNet:
    """This node's interfaces, socket variables and hostname address (the lookup is bounded)."""
    hostname = socket.gethostname()
    return NodeNet(
        node_rank=None,  # unknown before torchrun
        hostname=hostname,
        hostname_address=_bounded(lambda: resolve_hostname(hostname), timeout_s),
        ifaces=local_interfaces(),
        env=relevant_env(),
    )


def run_preflight(config: PreflightConfig, gpus: Gpus | None = None) -> Report:
    """Every check, judged, as a Report (`gpus` injectable: tests have no GPUs)."""
    start = time.monotonic()
    gpus = count_gpus() if gpus is None else gpus
    backend = "nccl" if gpus.visible else "gloo"
    node = collect_node(config.timeout_s)
    check = check_master(config.master_addr, config.master_port, config.timeout_s, node.ifaces)
    choices = {b: predict(node, b) for b in ("nccl", "gloo")}
    findings = judge_route(check, node.ifaces) + judge_master(check)  # a wrong route explains the rest
    for name in backends_to_judge(backend, node.env):
        findings += judge_backend(node, name, choices[name], check)
    findings += judge_gpus(config.nproc_per_node, gpus)
    local = this_node_consistency(config, gpus)
    findings += [this_node(f, node.hostname) for f in judge_paths({0: local["paths"]}, {0: node.hostname})]
    section = preflight_section(config, node, check, choices, gpus, backend)
    section["consistency"] = local
    section["checks"] += consistency_rows(local)
    section["seconds"] = round(time.monotonic() - start, 3)
    job = {
        "world_size": config.nproc_per_node,
        "nnodes": None,
        "backend": backend,
        "device": "cuda" if gpus.visible else "cpu",
        "nodes": [{"node_rank": None, "hostname": node.hostname, "ranks": []}],
    }
    environment = {"variables": node.env, "differs_by_node": {}}
    return Report(
        job=job, environment=environment, results=[], findings=findings, sections={"preflight": section}
    )


def this_node_consistency(config: PreflightConfig, gpus: Gpus) -> dict[str, Any]:
    """What the bench's consistency phase compares across nodes, read here alone (nothing to
    compare with before the job starts): versions, code digests, path summaries."""
    return {
        "versions": read_versions(list(config.packages), gpus.driver_version),
        "code": [code_digest(path, budget_s=CODE_BUDGET_S) for path in config.code],
        "paths": [path_summary(path, budget_s=PATH_BUDGET_S) for path in config.paths],
    }


def this_node(finding: Finding, host: str) -> Finding:
    """The bench's cross-node judgement, said of the one node preflight runs on (no node rank yet)."""
    text = finding.message.replace(f"node 0 ({host})", f"this node ({host})").replace("; no node sees it", "")
    fix = finding.fix.replace(f"node 0 ({host})", f"this node ({host})")
    return dataclasses.replace(finding, nodes=[], message=text, fix=fix)


def consistency_rows(local: dict[str, Any]) -> list[dict[str, str]]:
    rows = [_row(f"version: {name}", value or "-", "") for name, value in local["versions"].items()]
    for entry in local["code"]:
        head = (
            f"HEAD {entry['head'][:12]}{' (dirty)' if entry.get('dirty') else ''}"
            if entry.get("head")
            else ""
        )
        digest = str(entry.get("digest", ""))[:12]
        rows.append(_row(f"code {entry['path']}", entry["kind"] if not digest else f"digest {digest}", head))
    for entry in local["paths"]:
        rows.append(_row(f"path {entry['path']}", path_cell(entry), entry.get("error") or ""))
    return rows


def preflight_section(
    config: PreflightConfig,
    node: NodeNet,
    check: MasterCheck,
    choices: dict[str, Choice],
    gpus: Gpus,
    backend: str,
) -> dict[str, Any]:
    """The report's `preflight` section: what each check saw, and the rows the sinks show."""
    address, outcome = check.best
    interfaces = {
        name: {
            "variable": SOCKET_VARIABLE[name],
            "value": node.env.get(SOCKET_VARIABLE[name]),
            "chosen": choice.names,
            "rule": choice.rule,
            "notes": [*choice.notes, *filter(None, [route_note(name, choice, check)])],
        }
        for name, choice in choices.items()
    }
    return {
        "master": {
            "host": check.host,
            "port": check.port,
            "addresses": check.addresses,
            "error": check.error,
            "outcomes": check.outcomes,
            "address": address,
            "outcome": outcome,
            "where": check.where,
            "timeout_s": config.timeout_s,
        },
        "route": {"source": check.source, "interface": check.iface.name if check.iface else None},
        "hostname": node.hostname,
        "hostname_address": node.hostname_address,
        "interfaces": interfaces,
        "gpus": {**asdict(gpus), "names": list(gpus.names), "nproc_per_node": config.nproc_per_node},
        "backend": backend,
        "local_interfaces": [{**asdict(i), "addresses": list(i.addresses)} for i in node.ifaces],
        "checks": check_rows(check, interfaces, gpus, config.nproc_per_node, backend),
    }


def check_rows(
    check: MasterCheck, interfaces: dict[str, dict], gpus: Gpus, nproc: int | None, backend: str
) -> list[dict[str, str]]:
    """One row per check (check, result, detail): the table the terminal and report.md show."""
    address, outcome = check.best
    if not check.addresses:
        rows = [_row("master address", f"{check.host}: does not resolve", check.error or "")]
    else:
        others = [a for a in check.addresses if a != address]
        also = f" (also {', '.join(others)})" if others else ""
        shown = address if check.host == address else f"{check.host} -> {address}"
        rows = [
            _row("master address", f"{shown}{also}", _WHERE_DETAIL[str(check.where)]),
            _row("master port", f"{check.port}: {outcome}", _OUTCOME_DETAIL.get(outcome, "")),
            _row("route to master", *_route_cells(check)),
        ]
    for name, info in interfaces.items():
        detail = "; ".join([info["rule"], *info["notes"]])
        label = f"{name} interface" if name == backend else f"{name} interface (if used)"
        rows.append(_row(label, ",".join(info["chosen"]) or "none", detail))
    rows.append(_row("GPUs", *_gpu_cells(gpus, nproc, backend)))
    return rows


_WHERE_DETAIL = {
    "loopback": "loopback: only a single-node job can use it",
    "local": "an address of this node: this node is the master",
    "remote": "another host",
}
_OUTCOME_DETAIL = {
    OPEN: "something listens there (torchrun's store already running?)",
    REFUSED: "reachable, nothing listening yet: expected before launch",
    TIMEOUT: "no answer: filtered by a firewall, or the host is down",
    UNREACHABLE: "no route to the host",
}


def _row(check: str, result: str, detail: str) -> dict[str, str]:
    return {"check": check, "result": result, "detail": detail}


def _route_cells(check: MasterCheck) -> tuple[str, str]:
    if check.source is None:
        return "no route", "the kernel has no route to the master's address"
    shown = f"{check.iface.name if check.iface else '?'} ({check.source})"
    if check.where != "remote":
        return shown, "the master is this node: traffic stays on this host"
    if check.iface is None or check.iface.virtual:
        return shown, "virtual: does not leave this host" if check.iface else "interface not found"
    return shown, f"leaves this host (mtu {check.iface.mtu})"


def _gpu_cells(gpus: Gpus, nproc: int | None, backend: str) -> tuple[str, str]:
    cvd = "" if gpus.cuda_visible_devices is None else f", CUDA_VISIBLE_DEVICES={gpus.cuda_visible_devices!r}"
    if gpus.visible == 0:
        why = gpus.error or f"{gpus.physical} GPU(s) in NVML{cvd}"
        return "0 visible", f"{why}: the job will run Gloo on CPU"
    model = f" x {gpus.names[0]}" if gpus.names else ""
    asked = f"; --nproc-per-node {nproc}" if nproc is not None else ""
    lost = f"; not counted: {gpus.error}" if gpus.error else ""
    return f"{gpus.visible} visible{model}", f"{gpus.physical} in NVML{cvd}{asked}; backend {backend}{lost}"
