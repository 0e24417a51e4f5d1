"""One node's network as the judge needs it (NodeNet), how a node collects it, and how it is shown.

On the bench one rank per node (LOCAL_RANK 0) collects its node's NodeNet and publishes it to the
store; preflight builds one for its own node. The report's `network` section shows every node's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nccldoctor.environment import relevant_env
from nccldoctor.net.infiniband import IbPort, ib_ports
from nccldoctor.net.interfaces import Choice, Iface, local_interfaces, resolve_hostname
from nccldoctor.net.routes import route


@dataclass
class NodeNet:
    node_rank: int | None  # None: preflight, before torchrun gives the node a rank
    hostname: str
    hostname_address: str | None
    ifaces: list[Iface]
    env: dict[str, str] = field(default_factory=dict)
    master_route: dict[str, str | None] | None = None  # {"master", "source", "iface"}: the kernel's route
    ib_ports: list[IbPort] = field(default_factory=list)  # /sys/class/infiniband

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeNet:
        ifaces = [Iface(**{**i, "addresses": tuple(i["addresses"])}) for i in data["ifaces"]]
        ports = [IbPort.from_json(p) for p in data.get("ib_ports", [])]
        return cls(**{**data, "ifaces": ifaces, "ib_ports": ports})

    @property
    def ib_active(self) -> list[str]:
        """Active IB/RoCE ports by NCCL's name for them ("mlx5_0:1")."""
        return [p.name for p in self.ib_ports if p.active]


def collect_node_net(node_rank: int, hostname: str, master_addr: str | None = None) -> NodeNet:
    ifaces = local_interfaces()
    return NodeNet(
        node_rank=node_rank,
        hostname=hostname,
        hostname_address=resolve_hostname(hostname),
        ifaces=ifaces,
        env=relevant_env(),
        master_route=master_route(master_addr, ifaces) if master_addr else None,
        ib_ports=ib_ports(),
    )


def master_route(host: str, ifaces: list[Iface]) -> dict[str, str | None]:
    """Which local address and interface the kernel would use towards the master `host`."""
    address = resolve_hostname(host)
    source, iface = route(address, ifaces) if address else (None, None)
    return {"master": host, "source": source, "iface": iface.name if iface else None}


def network_section(nodes: list[NodeNet], choices: dict[int, Choice], backend: str) -> dict[str, Any]:
    """The report's `network` section: per node, what the backend will use and why."""
    return {
        "backend": backend,
        "nodes": [
            {
                "node_rank": n.node_rank,
                "hostname": n.hostname,
                "hostname_address": n.hostname_address,
                "chosen": choices[n.node_rank].names,
                "rule": choices[n.node_rank].rule,
                "master_route": n.master_route,
                "ib_ports": [p.to_json() for p in n.ib_ports],
                "interfaces": [
                    {
                        "name": i.name,
                        "addresses": list(i.addresses),
                        "up": i.up,
                        "mtu": i.mtu,
                        "speed_mbps": i.speed_mbps,
                    }
                    for i in n.ifaces
                ],
            }
            for n in nodes
        ],
    }
