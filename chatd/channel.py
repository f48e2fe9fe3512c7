"""What a link runs over: a ``Channel`` of whole frames, and the errors of opening one.

The runtime, the handshake and the testing toolkit see only this; ``chatd.transport``
implements it over websockets and ``chat_testing.memory`` in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol


class ChannelClosed(Exception):
    """The other end went away (or the channel was closed locally)."""


class ConnectError(OSError):
    """A peer address could not be reached.

    ``reason`` says why in a few fixed words an operator (and a test) can tell apart: one
    of ``REASONS``. The message says it in full, with the address and the details.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        if reason not in REASONS:
            raise ValueError(f"not a dial failure reason: {reason!r}")
        self.reason = reason


# Why a dial failed, as ``ConnectError.reason``.
REFUSED = "connection refused"  # nothing listens there (or a firewall says no)
TIMED_OUT = "timed out"  # no answer within the connect timeout: dropped, or too slow
NO_ROUTE = "no route"  # the network or host is unreachable from here
NOT_RESOLVED = "name not resolved"  # DNS has no such host
TLS_FAILED = "TLS failure"  # the TLS handshake failed (another secret, or --insecure)
WRONG_PEER = "wrong peer"  # TLS up, but its certificate is another node's
UPGRADE_REFUSED = "upgrade refused"  # the websocket upgrade was answered with an error
CLOSED = "closed"  # the other end closed the connection before the link was up
BAD_ADDRESS = "bad address"  # not a websocket address
OTHER = "other"  # an error of another kind: the message says which
REASONS = frozenset(
    {
        REFUSED,
        TIMED_OUT,
        NO_ROUTE,
        NOT_RESOLVED,
        TLS_FAILED,
        WRONG_PEER,
        UPGRADE_REFUSED,
        CLOSED,
        BAD_ADDRESS,
        OTHER,
    }
)


class Channel(Protocol):
    remote: str
    # An accepted channel: the trio clock time by which the peer must have finished the
    # handshake, counted from the TCP accept. ``math.inf`` for a dialed channel.
    deadline: float
    # Over TLS: the raw Ed25519 key of the peer's certificate (the handshake checks that
    # the peer's hello names it), and the protocol and cipher; None without TLS.
    peer_key: bytes | None
    cipher: str | None

    def authenticated(self) -> None:
        """The handshake succeeded: the deadline no longer applies, and an accepted
        channel stops counting against the cap of unauthenticated connections."""

    async def send(self, data: bytes) -> None:
        """Send one frame; raises ``ChannelClosed``."""

    async def send_many(self, frames: list[bytes]) -> None:
        """Send ``frames`` in order, as ``send`` each, in one write where the channel
        can; raises ``ChannelClosed``."""

    async def receive(self) -> bytes:
        """Wait for the next frame; raises ``ChannelClosed``."""

    async def aclose(self) -> None: ...


Handler = Callable[[Channel], Awaitable[None]]
