"""TCP reachability without hanging: many connects in parallel, each bounded; listeners; ports.

Used by the bench's port check (store-only, before the process group) and by preflight.
Outcomes are what a firewall looks like from the connecting side: `open`; `refused` (a RST:
nothing listens, or a REJECT rule); `timeout` (no answer: a DROP rule, or the host is down);
`unreachable` (no route, or an ICMP host/net-unreachable).
"""

from __future__ import annotations

import errno
import random
import selectors
import socket
import time
from collections.abc import Iterable
from pathlib import Path

OPEN, REFUSED, TIMEOUT, UNREACHABLE = "open", "refused", "timeout", "unreachable"
_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN}
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_RANGE = (32768, 60999)  # Linux's default


def _outcome(err: int) -> str:
    if err == 0:
        return OPEN
    if err == errno.ECONNREFUSED:
        return REFUSED
    if err in _UNREACHABLE_ERRNOS:
        return UNREACHABLE
    if err == errno.ETIMEDOUT:
        return TIMEOUT
    return f"error: {errno.errorcode.get(err, err)}"


def connect_all(
    targets: Iterable[tuple[str, int]],
    timeout_s: float,
    source: str | None = None,
    max_parallel: int = 256,
) -> dict[tuple[str, int], str]:
    """Try a TCP connection to every (host, port) at once; each gets `timeout_s`.

    Non-blocking sockets on one selector: N targets cost about one timeout, not N, and the
    whole call ends within ceil(N / max_parallel) timeouts even when every SYN is dropped.
    `source` binds the local address, so the test uses the interface the backend would.
    """
    pending = list(dict.fromkeys(targets))
    results: dict[tuple[str, int], str] = {}
    while pending:
        batch, pending = pending[:max_parallel], pending[max_parallel:]
        results.update(_connect_batch(batch, timeout_s, source))
    return results


def _connect_batch(
    batch: list[tuple[str, int]], timeout_s: float, source: str | None
) -> dict[tuple[str, int], str]:
    results: dict[tuple[str, int], str] = {}
    selector = selectors.DefaultSelector()
    try:
        for target in batch:
            sock = _start_connect(target, source, results)
            if sock is not None:
                selector.register(sock, selectors.EVENT_WRITE, target)
        deadline = time.monotonic() + timeout_s
        while selector.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(timeout=left):
                sock = key.fileobj
                results[key.data] = _outcome(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
                selector.unregister(sock)
                sock.close()
        for key in list(selector.get_map().values()):
            results[key.data] = TIMEOUT
            key.fileobj.close()
    finally:
        selector.close()
    return results


def _start_connect(
    target: tuple[str, int], source: str | None, results: dict[tuple[str, int], str]
) -> socket.socket | None:
    host, port = target
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        if source:
            sock.bind((source, 0))
        err = sock.connect_ex((host, port))
    except OSError as exc:
        err = exc.errno or errno.EINVAL
    if err in (errno.EINPROGRESS, errno.EWOULDBLOCK):
        return sock
    results[target] = _outcome(err)
    sock.close()
    return None


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """net.ipv4.ip_local_port_range: where NCCL's and Gloo's listening sockets get their ports."""
    try:
        low, high = (int(x) for x in path.read_text().split())
        return low, high
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_RANGE


def sample_ports(low: int, high: int, count: int, rng: random.Random) -> list[int]:
    """`count` ports spread over low..high: one random port from each of `count` equal strata."""
    span = high - low + 1
    if count >= span:
        return list(range(low, high + 1))
    edges = [low + span * i // count for i in range(count + 1)]
    return [rng.randrange(edges[i], edges[i + 1]) for i in range(count)]


class Listeners:
    """Listening sockets on one address; ports that cannot be bound (in use) are re-sampled.

    Nothing is accepted: the kernel completes the handshake into the backlog, which is all a
    connecting peer needs to see `open`. Close (or leave the with-block) to release them.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.sockets: dict[int, socket.socket] = {}

    def bind(self, port: int) -> bool:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.bind((self.address, port))
            sock.listen(64)
        except OSError:
            sock.close()
            return False
        self.sockets[port] = sock
        return True

    def bind_sampled(self, low: int, high: int, count: int, rng: random.Random, tries: int = 8) -> None:
        """Bind `count` ports sampled across low..high, re-sampling a stratum whose port is taken."""
        for port in sample_ports(low, high, count, rng):
            stratum = max(1, (high - low + 1) // count)
            start = port - (port - low) % stratum
            candidates = [port] + [rng.randrange(start, min(start + stratum, high + 1)) for _ in range(tries)]
            next((p for p in candidates if p not in self.sockets and self.bind(p)), None)

    @property
    def ports(self) -> list[int]:
        return sorted(self.sockets)

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()

    def __enter__(self) -> Listeners:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compress_ports(ports: Iterable[int]) -> str:
    """[40000, 40001, 40002, 41000] -> '40000-40002,41000'."""
    ordered = sorted(set(ports))
    parts, i = [], 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)
