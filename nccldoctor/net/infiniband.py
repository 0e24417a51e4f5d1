"""InfiniBand and RoCE ports as the kernel lists them in /sys/class/infiniband.

NCCL carries inter-node traffic over IB verbs (NET/IB) whenever it finds a usable port, and over
TCP sockets otherwise; knowing a node's ports tells "NCCL fell back to sockets although IB is
there" apart from "this node has no IB". Read from sysfs, not from ibstat or libibverbs, so it
works in containers without rdma-core and never blocks.

The files, as drivers/infiniband/core/sysfs.c writes them (one value and a newline each):
- ports/<n>/state: "%d: %s", e.g. "4: ACTIVE" (1 DOWN, 2 INIT, 3 ARMED, 4 ACTIVE, 5 ACTIVE_DEFER)
- ports/<n>/phys_state: "%d: %s", e.g. "5: LinkUp" (2 Polling, 3 Disabled, ...)
- ports/<n>/rate: "%d%s Gb/sec (%dX%s)", e.g. "100 Gb/sec (4X EDR)", "2.5 Gb/sec (1X SDR)"; reading
  it fails (EINVAL) on some drivers while the link has no valid width
- ports/<n>/link_layer: "InfiniBand", "Ethernet" (RoCE) or "Unknown"
- device/net/<netdev>: the network interfaces of the same PCI function (ib0 for IPoIB, the
  Ethernet interface for RoCE), for every port of the device
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

SYSFS_INFINIBAND = Path("/sys/class/infiniband")
_GBPS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*Gb/sec")
# NCCL's NET/IB takes ports of these link layers only; EFA devices also sit under
# /sys/class/infiniband ("Unknown"), but NCCL reaches them through a plugin, not NET/IB.
NCCL_IB_LINK_LAYERS = frozenset({"InfiniBand", "Ethernet"})


@dataclass(frozen=True)
class IbPort:
    device: str  # "mlx5_0"
    port: int  # 1
    state: str  # "ACTIVE" (from "4: ACTIVE"); "" when unreadable
    rate: str  # "100 Gb/sec (4X EDR)"; "" when unreadable
    rate_gbps: float  # 100.0; 0.0 when unknown
    link_layer: str  # "InfiniBand" | "Ethernet" (RoCE)
    netdevs: tuple[str, ...] = ()  # from /sys/class/infiniband/<dev>/device/net/*
    phys_state: str = ""  # "LinkUp" (from "5: LinkUp")

    @property
    def active(self) -> bool:
        return self.state == "ACTIVE"

    @property
    def name(self) -> str:
        """ "mlx5_0:1": how NCCL names a port (NET/IB log lines, NCCL_IB_HCA)."""
        return f"{self.device}:{self.port}"

    @property
    def roce(self) -> bool:
        return self.link_layer == "Ethernet"

    @property
    def nccl_usable(self) -> bool:
        """Active and of a link layer NCCL's NET/IB carries data over (IB or RoCE)."""
        return self.active and self.link_layer in NCCL_IB_LINK_LAYERS

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IbPort:
        """Rebuild from to_json()'s dict after a trip through JSON (lists back to tuples)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**{**values, "netdevs": tuple(values.get("netdevs", ()))})


def ib_off_on_purpose(env: Mapping[str, str]) -> bool:
    """NCCL_IB_DISABLE non-zero (NCCL reads it as an integer) or NCCL_NET=Socket: sockets were asked for."""
    try:
        disabled = int(env.get("NCCL_IB_DISABLE", "0").strip() or "0") != 0
    except ValueError:
        disabled = False
    return disabled or env.get("NCCL_NET", "").strip().lower() == "socket"


def ib_ports(root: Path = SYSFS_INFINIBAND) -> list[IbPort]:
    """Every port of every IB/RoCE device under `root`; [] when there is none or no such directory.

    Never raises on odd or missing files: an unreadable value is left empty, so one broken device
    does not hide the others.
    """
    return [port for device in _entries(root) for port in _device_ports(device)]


def _device_ports(device: Path) -> list[IbPort]:
    netdevs = tuple(p.name for p in _entries(device / "device" / "net"))
    return [_port(device.name, d, netdevs) for d in _entries(device / "ports") if d.name.isdigit()]


def _port(device: str, port_dir: Path, netdevs: tuple[str, ...]) -> IbPort:
    rate = _read(port_dir / "rate")
    return IbPort(
        device=device,
        port=int(port_dir.name),
        state=_after_code(_read(port_dir / "state")),
        rate=rate,
        rate_gbps=_gbps(rate),
        link_layer=_read(port_dir / "link_layer"),
        netdevs=netdevs,
        phys_state=_after_code(_read(port_dir / "phys_state")),
    )


def _entries(directory: Path) -> list[Path]:
    """Directory entries in natural order (mlx5_2 before mlx5_10); [] if it cannot be listed."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return []
    return sorted(entries, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _after_code(value: str) -> str:
    """ "4: ACTIVE" -> "ACTIVE"; a value without the numeric code is kept as it is."""
    return value.partition(": ")[2].strip() if ": " in value else value


def _gbps(rate: str) -> float:
    m = _GBPS.match(rate)
    return float(m[1]) if m else 0.0
