"""The bench's network phase, before the process group: interfaces, then ports, through the store only.

The master port already works (the job got this far), so the rendezvous store is the one
channel that cannot hang on a broken network. In two rounds:

1. interfaces: one rank per node (LOCAL_RANK 0) publishes its node's interfaces, route to
   the master and socket variables; rank 0 predicts each node's interface, judges, and
   decides: stop, go, or bad usage (--ifaces naming an interface a node lacks).
2. ports (multi-node, when round 1 says go): each node listens on sampled ephemeral ports
   and --ports on its chosen address; every node connects to its peers (every other node
   up to net.fanout.FULL_MESH_MAX, a bounded set beyond); rank 0 judges.

Every wait is bounded by the run's deadline (the supervisor's remaining time). This module moves
inventories and port lists through the store; what they mean is judged in nccldoctor.net.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.distributed as dist

from nccldoctor.config import BenchConfig, NetworkOptions
from nccldoctor.errors import UsageError
from nccldoctor.findings import Severity
from nccldoctor.net.fanout import PortPlan, port_plan, seed_of
from nccldoctor.net.inventory import NodeNet, collect_node_net, network_section
from nccldoctor.net.judge import judge_interfaces, listen_address
from nccldoctor.net.nic_sweep import plan_nic_sweep
from nccldoctor.net.ports import (
    CONNECT_TIMEOUT_S,
    Connected,
    Listening,
    blocks_backend,
    judge_ports,
    open_listeners,
    port_summary,
    targets_of,
)
from nccldoctor.net.routes import source_address
from nccldoctor.net.sockets import connect_all, ephemeral_range
from nccldoctor.phase import Phase, PhaseContext, PhaseResult
from nccldoctor.runtime import LaunchEnv, hostname, wait_for
from nccldoctor.storeio import get_many


@dataclass
class NetworkPlan:
    """What every rank learns from the check."""

    go: bool  # False: a fail finding means the backend would not work; skip the collectives
    in_use: str | None = None  # the swept interface the backend uses on node 0 (None on IB)
    sweep: list[str] = field(default_factory=list)  # interfaces (or IB ports) for the per-NIC sweep
    nodes: list[NodeNet] = field(default_factory=list)  # rank 0: every node's inventory
    predicted: dict[int, str | None] = field(default_factory=dict)  # rank 0: node -> its interface
    sweep_variable: str = ""  # what each sweep variant sets: NCCL_IB_HCA or the socket variable
    sweep_note: str | None = None  # what the sweep cannot tell on this job, for the report


def phases(config: BenchConfig) -> list[Phase]:
    return [NetworkPhase(config.network)]


class NetworkPhase(Phase):
    """Store only, before the process group: a broken network is reported, not hung on."""

    name = "network"
    needs_process_group = False

    def __init__(self, options: NetworkOptions) -> None:
        self.options = options

    def planned_steps(self, ctx: PhaseContext) -> int:
        return 0  # it runs before the progress bar starts

    def run(self, ctx: PhaseContext) -> PhaseResult:
        check = NetworkCheck(
            ctx.store, ctx.job.launch, self.options, ctx.job.backend, ctx.remaining_s, ctx.enter
        )
        check.record = ctx.record
        plan = check.run()
        return PhaseResult(published=plan, stop=not plan.go)


class NetworkCheck:
    """Run on every rank; rank 0 records its findings and the report's `network` section as
    soon as each round is judged (so a partial report has them)."""

    def __init__(
        self,
        store: dist.Store,
        launch: LaunchEnv,
        options: NetworkOptions,
        backend: str,
        remaining_s: Callable[[], float],
        enter: Callable[[str], None],
    ) -> None:
        self.store = store
        self.launch = launch
        self.options = options
        self.backend = backend
        self.remaining_s = remaining_s
        self.enter = enter
        self.record: Callable[[PhaseResult], None] = lambda result: None
        self.section: dict[str, Any] | None = None
        self.nodes: list[NodeNet] = []  # rank 0: every node's inventory
        self.seconds: dict[str, float] = {}

    def run(self) -> NetworkPlan:
        start = time.monotonic()
        self.enter("interface check")
        if self.launch.local_rank == 0:
            node = collect_node_net(self.launch.node_rank, hostname(), self.launch.master_addr)
            self.store.set(f"net/node/{self.launch.node_rank}", json.dumps(node.to_json()))
        if self.launch.rank == 0:
            self._decide_interfaces()
        decision = self._read("net/decision")
        if decision["verdict"] == "usage":
            raise UsageError(decision["message"])
        self.seconds["interfaces"] = time.monotonic() - start
        if decision["verdict"] == "go" and self.launch.nnodes > 1:
            start = time.monotonic()
            self.enter("port check")
            plan = port_plan(self.launch.nnodes, decision["port_seed"])
            if self.launch.local_rank == 0:
                self._check_ports({int(n): a for n, a in self._read("net/targets").items()}, plan)
            if self.launch.rank == 0:
                self._decide_ports(plan)
            decision["verdict"] = self._read("net/ports_decision")["verdict"]
            self.seconds["ports"] = time.monotonic() - start
        if self.section is not None:
            self.section["seconds"] = dict(self.seconds)  # rank 0's view: what the check cost
        predicted = {
            n["node_rank"]: next(iter(n["chosen"]), None) for n in (self.section or {}).get("nodes", [])
        }
        return NetworkPlan(
            decision["verdict"] == "go",
            decision["in_use"],
            decision["sweep"],
            self.nodes,
            predicted,
            decision["sweep_variable"],
            decision["sweep_note"],
        )

    # -- every node ------------------------------------------------------------------------------
    def _check_ports(self, targets: dict[int, str], plan: PortPlan) -> None:
        """Listen on our chosen address, connect to the plan's peers (every other node up to
        FULL_MESH_MAX), keep listening until the nodes that check us are done (a node that
        closes early would look blocked to a slow peer)."""
        me = self.launch.node_rank
        rng = random.Random()
        listeners, listening = open_listeners(me, targets[me], ephemeral_range(), self.options.ports, rng)
        with listeners:
            self.store.set(f"net/listen/{me}", json.dumps(listening.to_json()))
            peers = {
                n: Listening.from_json(v) for n, v in self._read_nodes("net/listen", plan.targets(me)).items()
            }
            outcomes = connect_all(targets_of(me, peers), CONNECT_TIMEOUT_S, source=targets[me])
            address_node = {info.address: n for n, info in peers.items()}
            seen = Connected(
                node_rank=me,
                outcomes=[(address_node[a], p, o) for (a, p), o in sorted(outcomes.items())],
                routes={str(n): source_address(targets[n]) for n in plan.targets(me)},
            )
            self.store.set(f"net/connected/{me}", json.dumps(seen.to_json()))
            self._wait([f"net/connected/{n}" for n in plan.sources(me)])  # waited for, not read

    # -- rank 0 ----------------------------------------------------------------------------------
    def _decide_interfaces(self) -> None:
        self.nodes = nodes = [NodeNet.from_json(v) for _, v in sorted(self._read_all("net/node").items())]
        choices, findings = judge_interfaces(nodes, self.backend)
        self.section = network_section(nodes, choices, self.backend)
        self.record(PhaseResult(findings=findings, sections={"network": self.section}))
        # os.environ: rank 0's, which its sweep children inherit (NCCL_IB_DISABLE, NCCL_NET)
        sweep = plan_nic_sweep(nodes, choices, self.options.ifaces, self.backend, os.environ)
        blocked = any(f.severity is Severity.FAIL for f in findings)
        targets = {n.node_rank: listen_address(n, choices[n.node_rank]) for n in nodes}
        # Apart from the decision, which every rank reads: only node leaders need N addresses.
        self.store.set("net/targets", json.dumps(targets))
        decision: dict[str, Any] = {
            "verdict": "usage" if sweep.usage else "stop" if blocked else "go",
            "message": sweep.usage,
            "in_use": sweep.in_use,
            "sweep": sweep.names,
            "sweep_variable": sweep.variable,
            "sweep_note": sweep.note,
            "port_seed": seed_of(os.environ.get("TORCHELASTIC_RUN_ID", ""), random.Random()),
        }
        if self.launch.nnodes > 1 and not blocked and None in targets.values():
            decision["verdict"] = "stop"  # judge_interfaces has named the node without an address
        self.store.set("net/decision", json.dumps(decision))

    def _decide_ports(self, plan: PortPlan) -> None:
        listening = {n: Listening.from_json(v) for n, v in self._read_all("net/listen").items()}
        connected = {n: Connected.from_json(v) for n, v in self._read_all("net/connected").items()}
        findings = judge_ports(listening, connected, {n.node_rank: n.hostname for n in self.nodes})
        self.record(PhaseResult(findings=findings))
        if self.section is not None:
            self.section["ports"] = port_summary(listening, connected, plan)
        verdict = "stop" if any(blocks_backend(f) for f in findings) else "go"
        self.store.set("net/ports_decision", json.dumps({"verdict": verdict}))

    # -- the store -------------------------------------------------------------------------------
    def _wait(self, keys: list[str]) -> None:
        wait_for(self.store, keys, self.remaining_s())

    def _read(self, key: str) -> dict[str, Any]:
        self._wait([key])
        return json.loads(self.store.get(key))

    def _read_all(self, prefix: str) -> dict[int, dict[str, Any]]:
        """One key per node, waited for together and fetched in chunks (storeio)."""
        return self._read_nodes(prefix, list(range(self.launch.nnodes)))

    def _read_nodes(self, prefix: str, nodes: list[int]) -> dict[int, dict[str, Any]]:
        keys = [f"{prefix}/{n}" for n in nodes]
        self._wait(keys)
        return {n: json.loads(raw) for n, raw in zip(nodes, get_many(self.store, keys), strict=True)}
