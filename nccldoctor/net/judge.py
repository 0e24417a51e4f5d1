"""The interface judgement: which interface will the backend use on a node, and can it work?

One judge for the bench (every node, before the process group) and for preflight (this node,
before torchrun): `predict` applies NCCL's or Gloo's rules (nccldoctor.net.interfaces) to a
node's inventory, `judge_choice` says whether what they pick is usable (iface_missing,
iface_down, iface_virtual), and on the bench `judge_interfaces` adds what only several nodes
together show (iface_mismatch, mtu_mismatch).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

from nccldoctor.findings import Finding, Severity, make_finding
from nccldoctor.net.interfaces import (
    SOCKET_VARIABLE,
    Choice,
    Iface,
    gloo_choice,
    nccl_choice,
    real_nics,
    shown,
)
from nccldoctor.net.inventory import NodeNet


def predict(node: NodeNet, backend: str) -> Choice:
    if backend == "nccl":
        return nccl_choice(node.ifaces, node.env)
    return gloo_choice(node.ifaces, node.env, node.hostname_address)


def judge_interfaces(nodes: list[NodeNet], backend: str) -> tuple[dict[int, Choice], list[Finding]]:
    """Per node the predicted interfaces, and what is wrong with them (the bench: every node known)."""
    choices = {n.node_rank: predict(n, backend) for n in nodes}
    spans_nodes = len(nodes) > 1
    findings = [f for n in nodes for f in judge_choice(n, backend, choices[n.node_rank], spans_nodes)]
    if not any(f.severity is Severity.FAIL for f in findings):
        findings += _reachability(nodes, choices, backend) + _mtu(nodes, choices)
    return choices, findings


def _fix_nic(ifaces: list[Iface], toward_master: Iface | None = None) -> str:
    """The NIC a fix should name: the one the route to the master leaves through, else any real one."""
    real = real_nics(ifaces)
    if toward_master is not None and toward_master.name in real:
        return toward_master.name
    return (real or ["<interface>"])[0]


def judge_choice(
    node: NodeNet,
    backend: str,
    choice: Choice,
    spans_nodes: bool | None,
    toward_master: Iface | None = None,
) -> list[Finding]:
    """iface_missing / iface_down / iface_virtual for the interfaces `backend` picks on `node`.

    spans_nodes: True when the job has other nodes, so an interface that stays on this host
    fails; False on a single node, where it is fine; None when this node is the master and the
    job's size is not known yet (preflight), which warns. toward_master: the interface the route
    to the master leaves through, when known; fixes name it first.
    """
    export = f"export {SOCKET_VARIABLE[backend]}={_fix_nic(node.ifaces, toward_master)}"
    evidence = {
        "backend": backend,
        "rule": choice.rule,
        "chosen": choice.names,
        "interfaces": [i.name for i in node.ifaces],
    }
    if not choice.ifaces or choice.missing:  # Gloo needs every name it is given
        return [_missing(node, backend, choice, export, evidence)]
    found = [
        _down(node, backend, choice, export, evidence),
        _virtual(node, backend, choice, spans_nodes, export, evidence),
    ]
    return [f for f in found if f is not None]


def _down(
    node: NodeNet, backend: str, choice: Choice, export: str, evidence: dict[str, Any]
) -> Finding | None:
    down = [i.name for i in choice.ifaces if not i.up]
    if not down:
        return None
    lead, where = _named(node)
    return make_finding(
        "iface_down",
        f"{lead}{backend} would use {', '.join(down)}, which is down",
        evidence=evidence,
        fix=f"bring it up (ip link set {down[0]} up) or {export}",
        **where,
    )


def _virtual(
    node: NodeNet,
    backend: str,
    choice: Choice,
    spans_nodes: bool | None,
    export: str,
    evidence: dict[str, Any],
) -> Finding | None:
    first = choice.ifaces[0]
    if not first.virtual or spans_nodes is False:
        return None
    lead, where = _named(node)
    message = (
        f"{lead}{backend} would carry traffic between nodes on {first.name} ({choice.rule}), "
        "which does not leave this host"
    )
    if spans_nodes is None:  # most likely a multi-node job, but a single-node one cannot be ruled out
        message += " (this node is the master: a problem if the job spans nodes)"
    severity = Severity.FAIL if spans_nodes else Severity.WARN
    return make_finding("iface_virtual", message, evidence=evidence, fix=export, severity=severity, **where)


def _named(node: NodeNet) -> tuple[str, dict[str, list[int]]]:
    """How a finding names its node: the bench by its rank; preflight judges the host it runs on,
    which has no rank before torchrun, so its findings name no node."""
    if node.node_rank is None:
        return "", {}
    return f"node {node.node_rank}: ", {"nodes": [node.node_rank]}


def _missing(node: NodeNet, backend: str, choice: Choice, export: str, evidence: dict[str, Any]) -> Finding:
    present = ", ".join(i.name for i in node.ifaces)
    matches = "matches no interface"
    if choice.missing and choice.ifaces:  # some names exist; Gloo fails on the first that does not
        matches = f"names {', '.join(shown(n) or repr(n) for n in choice.missing)}, which is not an interface"
    if node.node_rank is None:
        message = f"{backend}: {choice.rule} {matches} on {node.hostname}; it has {present}"
        fix = f"{export}  (an interface that exists here)"
        return make_finding("iface_missing", message, evidence=evidence, fix=fix)
    return make_finding(
        "iface_missing",
        f"node {node.node_rank} ({node.hostname}): {choice.rule} {matches}; it has {present}",
        evidence=evidence,
        fix=f"{export}  (an interface that exists on node {node.node_rank})",
        nodes=[node.node_rank],
    )


def listen_address(node: NodeNet, choice: Choice) -> str | None:
    """The address the backend's sockets bind on this node: Gloo's hostname address, else the
    chosen interface's first IPv4 address (NCCL prefers IPv4 unless told AF_INET6)."""
    hostname_is_used = choice.rule.startswith("hostname") and node.hostname_address and choice.ifaces
    if hostname_is_used and any(
        net.ip.compressed == node.hostname_address for net in choice.ifaces[0].networks
    ):
        return node.hostname_address
    if not choice.ifaces:
        return None
    networks = sorted(choice.ifaces[0].networks, key=lambda net: net.version)
    usable = [net for net in networks if not net.ip.is_link_local]
    return usable[0].ip.compressed if usable else None


def shared_candidates(nodes: list[NodeNet]) -> list[str]:
    """Interfaces (by name) that are up, real, and on one common subnet on every node."""
    found = []
    for name in real_nics(nodes[0].ifaces):
        subnets = []
        for node in nodes:
            iface = next((i for i in node.ifaces if i.name == name and i.up), None)
            subnets.append({net.network for net in iface.networks} if iface else set())
        if set.intersection(*subnets):
            found.append(name)
    return found


def _first_subnets(choice: Choice) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The subnets of the interface the backend uses first (link-local ones reach no other subnet)."""
    return {net.network for i in choice.ifaces[:1] for net in i.networks if not net.ip.is_link_local}


def _reachability(nodes: list[NodeNet], choices: dict[int, Choice], backend: str) -> list[Finding]:
    """Nodes whose chosen interface shares no subnet with node 0's chosen interface."""
    reference = _first_subnets(choices[nodes[0].node_rank])
    cut_off = [n for n in nodes[1:] if not _first_subnets(choices[n.node_rank]) & reference]
    if not cut_off:
        return []
    ranks = [n.node_rank for n in cut_off]
    names = {n.node_rank: choices[n.node_rank].names[:1] for n in nodes}
    shared = next(iter(shared_candidates(nodes)), None)
    return [
        make_finding(
            "iface_mismatch",
            f"{backend}'s interfaces share no subnet between node 0 ({_first_name(names[0])}) and "
            f"{'node' if len(ranks) == 1 else 'nodes'} "
            + ", ".join(f"{r} ({_first_name(names[r])})" for r in ranks),
            nodes=[0, *ranks],
            evidence={"chosen": names},
            fix=f"export {SOCKET_VARIABLE[backend]}={shared}"
            if shared
            else f"set {SOCKET_VARIABLE[backend]} per node to interfaces on one common subnet",
        )
    ]


def _first_name(names: list[str]) -> str:
    return names[0] if names else "no interface"


def _mtu(nodes: list[NodeNet], choices: dict[int, Choice]) -> list[Finding]:
    """mtu_mismatch: the odd nodes named by the most common MTU; a tie names every node.

    The fix points at the fabric's MTU, which only the switches know: usually the one most
    nodes use, or on a tie the largest (the smallest would cut jumbo frames for every node)."""
    used = {n.node_rank: choices[n.node_rank].ifaces[0] for n in nodes if choices[n.node_rank].ifaces}
    mtus = {node: iface.mtu for node, iface in used.items()}
    if len(set(mtus.values())) <= 1:
        return []
    ranked = Counter(mtus.values()).most_common()
    if ranked[0][1] > ranked[1][1]:
        target = ranked[0][0]
        odd = sorted(node for node, mtu in mtus.items() if mtu != target)
        others = len(mtus) - len(odd)
        message = (
            f"MTU differs between nodes on the interfaces in use: {_mtus_text(odd, used)}, "
            f"while the other {others} nodes have {target}"
        )
        usual = f"usually the one most nodes use, {target}"
    else:
        target = max(mtus.values())
        odd = sorted(mtus)  # any of them may be the odd one
        message = (
            "MTU differs between nodes on the interfaces in use, and no majority tells which "
            f"node is odd: {_mtus_text(odd, used)}"
        )
        usual = f"here likely the largest, {target}, if the switches carry it"
    to_change = [node for node in odd if mtus[node] != target]
    return [
        make_finding(
            "mtu_mismatch",
            message,
            nodes=odd,
            evidence={"mtu_by_node": mtus},
            fix=f"set every node's interface to the MTU the switch fabric uses ({usual}): "
            f"{_mtu_commands(to_change, used, target)}",
        )
    ]


def _mtus_text(nodes: list[int], used: dict[int, Iface]) -> str:
    """'node 0 (eth0) has 1500 and node 1 (eth0) has 1400'."""
    parts = [f"node {node} ({used[node].name}) has {used[node].mtu}" for node in nodes]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _mtu_commands(nodes: list[int], used: dict[int, Iface], mtu: int) -> str:
    """'ip link set dev eth0 mtu 1500 on node 1', one command per interface name."""
    by_name: dict[str, list[int]] = {}
    for node in nodes:
        by_name.setdefault(used[node].name, []).append(node)
    return "; ".join(
        f"ip link set dev {name} mtu {mtu} on {'node' if len(on) == 1 else 'nodes'} {', '.join(map(str, on))}"
        for name, on in by_name.items()
    )
