"""How nodes reach each other: a small interface, and its websocket implementation.

A ``Channel`` carries whole frames (bytes) both ways. The runtime never sees websockets;
tests swap in ``chatd.testing.memory`` to run a cluster in one process.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    WebSocketRequest,
    open_websocket_url,
    serve_websocket,
)

# trio-websocket's own reader queues this many messages before it stops reading; ours
# drains it continuously, so a small queue is enough.
WS_QUEUE = 16


class ChannelClosed(Exception):
    """The other end went away (or the channel was closed locally)."""


class ConnectError(OSError):
    """A peer address could not be reached; the message says why."""


class Channel(Protocol):
    remote: str

    async def send(self, data: bytes) -> None:
        """Send one frame; raises ``ChannelClosed``."""

    async def receive(self) -> bytes:
        """Wait for the next frame; raises ``ChannelClosed``."""

    async def aclose(self) -> None: ...


Handler = Callable[[Channel], Awaitable[None]]


class Transport(Protocol):
    def open_channel(self, address: str) -> Any:
        """``async with transport.open_channel(address) as channel``; raises ``ConnectError``."""

    async def serve(self, handler: Handler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Accept channels forever, each handled by ``handler`` in its own task.

        ``task_status.started(address)`` reports the address really bound.
        """


class WebSocketChannel:
    def __init__(self, ws: WebSocketConnection, remote: str) -> None:
        self._ws = ws
        self.remote = remote

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send_message(data)
        except ConnectionClosed as exc:
            raise ChannelClosed(_reason(exc)) from None

    async def receive(self) -> bytes:
        try:
            data = await self._ws.get_message()
        except ConnectionClosed as exc:
            raise ChannelClosed(_reason(exc)) from None
        return data.encode() if isinstance(data, str) else bytes(data)

    async def aclose(self) -> None:
        await self._ws.aclose()


def _reason(exc: ConnectionClosed) -> str:
    reason = exc.reason
    if reason is None:
        return "closed"
    return f"{reason.name} ({reason.code}){': ' + reason.reason if reason.reason else ''}"


class WebSocketTransport:
    def __init__(self, host: str, port: int, max_frame_bytes: int) -> None:
        self.host = host
        self.port = port
        self.max_frame_bytes = max_frame_bytes

    @asynccontextmanager
    async def open_channel(self, address: str) -> AsyncIterator[Channel]:
        parts = urlsplit(address)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConnectError(f"not a websocket address: {address!r}")
        connected = False
        try:
            async with open_websocket_url(
                address,
                max_message_size=self.max_frame_bytes,
                message_queue_size=WS_QUEUE,
                connect_timeout=5,
                disconnect_timeout=2,
            ) as ws:
                connected = True
                yield WebSocketChannel(ws, address)
        except (OSError, HandshakeError, trio.TooSlowError) as exc:
            if connected:
                raise
            raise ConnectError(f"cannot reach {address}: {dial_failure(exc)}") from None

    async def serve(self, handler: Handler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async def on_request(request: WebSocketRequest) -> None:
            # The client may be gone already (a dial called off mid-handshake, a reset):
            # that ends this connection only. Raised here, it would stop the whole server.
            try:
                ws = await request.accept()
                end = ws.remote
            except (ConnectionClosed, OSError):
                return
            remote = end if isinstance(end, str) else f"{end.address}:{end.port}"
            await handler(WebSocketChannel(ws, remote))

        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                lambda task_status: serve_websocket(
                    on_request,
                    self.host,
                    self.port,
                    ssl_context=None,
                    max_message_size=self.max_frame_bytes,
                    message_queue_size=WS_QUEUE,
                    disconnect_timeout=2,
                    task_status=task_status,
                )
            )
            task_status.started(f"ws://{_host_for_url(self.host)}:{server.port}")


def dial_failure(exc: BaseException) -> str:
    """Why a dial failed, never empty: "connection refused", "timed out", "HTTP 404", ...

    trio-websocket wraps the socket error in a ``HandshakeError`` without a message, and
    trio wraps the per-address errors of a connect in a group; the errno says it best.
    """
    if isinstance(exc, ConnectionRejected):
        return f"websocket upgrade refused: HTTP {exc.status_code}"
    if isinstance(exc, ConnectionTimeout | trio.TooSlowError):
        return "timed out"
    if isinstance(exc, HandshakeError) and exc.__cause__ is not None:
        return dial_failure(exc.__cause__)
    if isinstance(exc, OSError):
        leaves = _os_errors(exc)
        reasons = list(dict.fromkeys(r for r in map(_strerror, leaves) if r))
        if reasons:
            return "; ".join(reasons)
    return str(exc) or type(exc).__name__


def _os_errors(exc: BaseException) -> list[OSError]:
    """The OSErrors behind ``exc``: itself, or the members of the group it was raised from."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for member in exc.exceptions for leaf in _os_errors(member)]
    if isinstance(exc, OSError) and exc.errno is None and exc.__cause__ is not None:
        return _os_errors(exc.__cause__) or [exc]
    return [exc] if isinstance(exc, OSError) else []


def _strerror(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):  # its errno is a resolver code, not an errno
        return str(exc.strerror or "").lower()
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc)


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host
