"""Whether a registering node can be dialed: the director connects back to it.

A node says where peers should dial it (its advertised ``public-address``); behind a home
router that address is a LAN address nobody outside can reach. The director sees the
address the registration came from (as STUN does) and tries the advertised one from
outside, so the node learns which it is instead of assuming it.

Rules, so that the director cannot be used to probe anything else:

- only the advertised address is dialed: its host (an IP address, or a name resolved
  here) must be the very address the registration came from, or nothing is dialed
  (``not-dialed``: a node behind NAT advertising its LAN address, or an address that is
  not its own);
- one TCP connect, closed at once before a byte is sent, within ``timeout`` seconds;
- at most ``concurrency`` at once; past that, a request waits within the same timeout
  and is answered ``busy`` (not reachable) if no slot frees.

A TCP connect is the proof: it crosses the same NAT and firewalls a peer's dial would.
The probe stops before the TLS or websocket handshake on purpose: a node logs every
failed TLS handshake on its peer port as a refused connection, while a connection closed
before its first byte passes silently (``chatd.transport``).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import urlsplit

import trio
from attrs import frozen

TIMEOUT = 1.0  # well inside chatd's 3 s for a whole director request
CONCURRENCY = 16

Result = Literal["reachable", "refused", "timed-out", "unreachable", "not-dialed", "busy"]
Connect = Callable[[str, int], Awaitable[None]]


@frozen
class Verdict:
    """What one dial-back found: ``reason`` is one line for the log, never empty."""

    result: Result
    reason: str

    @property
    def reachable(self) -> bool:
        return self.result == "reachable"


def same_host(a: str, b: str) -> bool:
    """Whether two IP addresses are one (an IPv4-mapped IPv6 address is its IPv4 one)."""
    try:
        first, second = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return False
    return _unmapped(first) == _unmapped(second)


def _unmapped(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


async def _resolve(host: str) -> list[str]:
    """The IP addresses of ``host`` (itself if it is one)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        infos = await trio.socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        return [str(info[4][0]) for info in infos]
    return [host]


async def tcp_connect(address: str, port: int) -> None:
    """Connect to ``address:port`` and close at once (a FIN, before any byte)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with trio.socket.socket(family, socket.SOCK_STREAM) as sock:
        await sock.connect((address, port))


def _split(advertised: str) -> tuple[str, int] | None:
    """HOST and PORT of ``ws[s]://HOST:PORT``, or None."""
    try:
        parts = urlsplit(advertised)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("ws", "wss") or not host or not port:
        return None
    return host, port


class DialBack:
    """Dials back the advertised addresses of registering nodes; see the module doc."""

    def __init__(
        self,
        timeout: float = TIMEOUT,
        concurrency: int = CONCURRENCY,
        connect: Connect = tcp_connect,
    ) -> None:
        self.timeout = timeout
        self.concurrency = concurrency
        self._slots = trio.CapacityLimiter(concurrency)
        self._connect = connect

    async def check(self, advertised: str, observed: str) -> Verdict:
        """Dial ``advertised`` (``ws[s]://HOST:PORT``) if its host is ``observed``."""
        split = _split(advertised)
        if split is None:
            return Verdict("not-dialed", "the advertised address is not ws[s]://HOST:PORT")
        host, port = split
        stage = "resolving"
        with trio.move_on_after(self.timeout):
            target = await self._target(host, observed)
            if isinstance(target, Verdict):
                return target
            stage = "waiting"
            async with self._slots:
                stage = "dialing"
                return await self._dial(target, port)
        if stage == "waiting":
            busy = f"{self.concurrency} dial-backs under way for {self.timeout:g} s"
            return Verdict("busy", busy)
        return Verdict("timed-out", f"{stage} {host} took over {self.timeout:g} s")

    async def _target(self, host: str, observed: str) -> str | Verdict:
        try:
            addresses = await _resolve(host)
        except OSError as exc:
            return Verdict("not-dialed", f"{host} does not resolve: {exc.strerror or exc}")
        for address in addresses:
            if same_host(address, observed):
                return address
        return Verdict(
            "not-dialed",
            f"the advertised host {host} is not the address the registration came from"
            f" ({observed}): behind NAT, or not this node's own address",
        )

    async def _dial(self, address: str, port: int) -> Verdict:
        try:
            await self._connect(address, port)
        except OSError as exc:
            why = _strerror(exc)
            if exc.errno == errno.ECONNREFUSED:
                return Verdict("refused", why)
            return Verdict("unreachable", why)
        return Verdict("reachable", "a TCP connect to the advertised address succeeded")


def _strerror(exc: OSError) -> str:
    """The OS's words for ``exc`` ("connection refused"), else its own."""
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc).strip() or type(exc).__name__
