"""Routes: which local address, and so which interface, the kernel uses towards an address.

One lookup for the bench (each node's route to the master, to its peers) and for preflight (the
route to the master): the interface a route leaves through is what tells a NIC that reaches the
other node from a bridge whose subnet shadows it.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import NamedTuple

from nccldoctor.net.interfaces import Iface


class Route(NamedTuple):
    source: str | None  # this node's address on the route; None: no route
    iface: Iface | None  # the interface that owns `source`; None: no route, or not found


def source_address(destination: str, port: int = 9) -> str | None:
    """The local address the kernel would use to reach `destination` (None: no route).

    A UDP connect only consults the routing table; no packet is sent.
    """
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((destination, port))
        except OSError:
            return None
        return sock.getsockname()[0]


def owner_of(address: str, ifaces: list[Iface]) -> Iface | None:
    """The interface that holds `address`, if it is one of this node's ("fe80::1%eth0" too)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return next((i for i in ifaces if any(net.ip == ip for net in i.networks)), None)


def route(destination: str, ifaces: list[Iface]) -> Route:
    """The source address the kernel picks towards `destination`, and the interface that owns it."""
    source = source_address(destination)
    return Route(source, owner_of(source, ifaces) if source else None)
