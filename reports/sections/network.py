"""The network phase's section: the interface each node will use, and the port mesh."""

from __future__ import annotations

import pandas as pd

from nccldoctor.report import Report
from nccldoctor.reports.sections import Table, capped, view


def network_table(report: Report) -> pd.DataFrame | None:
    """Per node: the interface the backend will use, why, and its address and MTU."""
    network = report.sections.get("network")
    if not network:
        return None
    lines = []
    for node in network["nodes"]:
        by_name = {i["name"]: i for i in node["interfaces"]}
        chosen = [by_name[n] for n in node["chosen"] if n in by_name]
        lines.append(
            [
                node["node_rank"],
                node["hostname"],
                ",".join(node["chosen"]) or "none",
                " ".join(a for i in chosen for a in i["addresses"]) or "-",
                chosen[0]["mtu"] if chosen else "-",
                node["rule"],
                _ib_cell(node.get("ib_ports", [])),
            ]
        )
    frame = pd.DataFrame(
        lines, columns=["node", "hostname", "interface", "addresses", "mtu", "rule", "IB/RoCE"]
    )
    if (frame["IB/RoCE"] == "-").all():
        frame = frame.drop(columns="IB/RoCE")  # most test beds and clouds: no column of dashes
    return frame


def _ib_cell(ports: list[dict]) -> str:
    """'mlx5_0:1 ACTIVE 200G IB, mlx5_1:1 DOWN' -- what NCCL's NET/IB could use on the node."""
    if not ports:
        return "-"
    cells = []
    for p in ports:
        rate = f" {p['rate_gbps']:g}G" if p["rate_gbps"] else ""
        layer = " RoCE" if p["link_layer"] == "Ethernet" else " IB" if p["link_layer"] == "InfiniBand" else ""
        cells.append(f"{p['device']}:{p['port']} {p['state'] or '?'}{rate}{layer}")
    return ", ".join(cells)


def ports_table(report: Report) -> pd.DataFrame | None:
    """Per (from node, to node): how many sampled ports connected, and how the rest failed."""
    ports = (report.sections.get("network") or {}).get("ports")
    if not ports:
        return None
    lines = []
    for pair in ports["pairs"]:
        listening = ports["listening"].get(str(pair["to_node"]), {})
        failed = {k: v for k, v in pair.items() if k not in ("from_node", "to_node", "route_source", "open")}
        lines.append(
            [
                pair["from_node"],
                pair["to_node"],
                listening.get("address", "?"),
                pair.get("open", 0),
                ", ".join(f"{n} {kind}" for kind, n in failed.items()) or "-",
                pair.get("route_source") or "-",
            ]
        )
    return pd.DataFrame(lines, columns=["from node", "to node", "address", "open", "failed", "route source"])


@view("network", order=10)
def draw(report: Report) -> list[Table]:
    backend = report.sections["network"].get("backend", "")
    return [
        capped(f"Interfaces ({backend})", network_table(report)),
        capped("Ports (sampled ephemeral range and --ports, between nodes)", ports_table(report)),
    ]
