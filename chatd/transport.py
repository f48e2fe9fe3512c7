"""How nodes reach each other: a small interface, and its websocket implementation.

A ``Channel`` (``chatd.channel``) carries whole frames both ways. The runtime never sees
websockets; tests swap in ``chat_testing.memory`` to run a cluster in one process. With a
group secret every connection is TLS 1.3 (``chatd.tls``), checked before the websocket
upgrade: a dial pins the node it means to reach (``chatd.dial``), and the peer port takes
TLS only (a node without a secret, plaintext only; ``chatd.peer_port``); either refusal is
logged with its reason on both ends.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

import trio

from chat import log as chat_log
from chatd.channel import Channel, ChannelClosed, ConnectError, Handler
from chatd.dial import host_for_url, open_websocket_channel
from chatd.peer_port import PeerPort

if TYPE_CHECKING:  # chatd.tls loads cryptography: only a node with a secret needs it
    from chatd.tls import PeerTls

__all__ = [
    "Channel",
    "ChannelClosed",
    "ConnectError",
    "Handler",
    "Transport",
    "WebSocketTransport",
    "host_for_url",
]


class Transport(Protocol):
    def open_channel(
        self, address: str, peer: str | None = None
    ) -> AbstractAsyncContextManager[Channel]:
        """``async with transport.open_channel(address, peer) as channel``; raises
        ``ConnectError``. ``peer``: the node-id meant, refused if another answers."""

    async def serve(
        self, handler: Handler, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept channels forever, each handled by ``handler`` in its own task.

        ``task_status.started(address)`` reports the address really bound. The handler
        must finish the handshake by ``channel.deadline`` (or give up), then call
        ``channel.authenticated()``.
        """


class WebSocketTransport:
    """The ``Transport`` of a node: websockets, over TLS when it has a group secret."""

    def __init__(
        self,
        host: str,
        port: int,
        max_frame_bytes: int,
        *,
        handshake_timeout: float = 5.0,
        max_unauthenticated: int = 64,
        log: chat_log.WarningLog | None = None,
        tls: PeerTls | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_frame_bytes = max_frame_bytes
        # None: plain websockets (--insecure). Replaced when the keyring is reloaded; a
        # connection keeps the contexts it was opened with.
        self.tls = tls
        self.peer_port = PeerPort(
            max_frame_bytes=max_frame_bytes,
            handshake_timeout=handshake_timeout,
            max_unauthenticated=max_unauthenticated,
            log=log if log is not None else chat_log.get_logger(),
            tls=lambda: self.tls,
        )

    @property
    def unauthenticated(self) -> int:
        """Accepted connections not yet authenticated (or closed)."""
        return self.peer_port.unauthenticated

    def open_channel(
        self, address: str, peer: str | None = None
    ) -> AbstractAsyncContextManager[Channel]:
        """A channel to ``address``; with TLS, to the node ``peer`` only (its key pinned).

        The node's own mode decides, not the scheme: a secure node speaks TLS to every
        peer, so that an insecure one sees (and logs) a TLS connection it cannot take.
        """
        return open_websocket_channel(address, peer, self.tls, self.max_frame_bytes)

    async def serve(
        self, handler: Handler, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Accept peers until cancelled; unauthenticated connections are bounded (see
        ``chatd.peer_port.PeerPort.serve``)."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await self.peer_port.serve(listeners, handler, nursery)
            scheme = "ws" if self.tls is None else "wss"
            task_status.started(f"{scheme}://{host_for_url(self.host)}:{port}")
