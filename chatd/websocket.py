"""A ``Channel`` over a websocket, the websocket over a dialed stream, and trio-websocket's
two blind spots worked around.

trio-websocket runs its reader in a nursery it is given, waits for the opening handshake
without noticing that the reader ended (a broken stream, an SSL alert), and swallows the
error that ended it; a strict nursery wraps whatever the ``async with`` body raises in an
exception group. ``client_websocket`` gives a dial a prompt failure with its cause, and
its callers the exception that matters as itself.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import cast

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
)
from wsproto.events import BytesMessage

from chatd.channel import ChannelClosed

# trio-websocket's own reader queues this many messages before it stops reading; ours
# drains it continuously, so a small queue is enough.
WS_QUEUE = 16
# One dial, TCP connect through TLS and the websocket upgrade, in seconds.
CONNECT_TIMEOUT = 5.0
# How long closing a websocket may wait for the peer's close frame.
DISCONNECT_TIMEOUT = 2.0


class WebSocketChannel:
    """A ``chatd.channel.Channel`` over a trio-websocket connection, dialed or accepted."""

    def __init__(
        self,
        ws: WebSocketConnection,
        remote: str,
        deadline: float = math.inf,
        on_authenticated: Callable[[], None] | None = None,
        *,
        peer_key: bytes | None = None,
        cipher: str | None = None,
    ) -> None:
        self._ws = ws
        self.remote = remote
        self.deadline = deadline
        self._on_authenticated = on_authenticated
        self.peer_key = peer_key
        self.cipher = cipher

    def authenticated(self) -> None:
        self.deadline = math.inf
        if self._on_authenticated is not None:
            self._on_authenticated()
            self._on_authenticated = None

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send_message(data)
        except ConnectionClosed as exc:
            raise ChannelClosed(_reason(exc)) from None

    async def send_many(self, frames: list[bytes]) -> None:
        try:
            await send_messages(self._ws, frames)
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


async def send_messages(ws: WebSocketConnection, messages: list[bytes]) -> None:
    """Send ``messages`` (binary websocket messages, as ``send_message`` of bytes sends)
    with one write of the stream.

    ``send_message`` takes a lock and does one stream write per message: most of the CPU a
    frame costs once several are queued. This is ``WebSocketConnection._send`` of
    trio-websocket 0.12.2 for many events at once, so it reaches into its internals
    (``_close_reason``, ``_wsproto``, ``_stream_lock``, ``_stream``,
    ``_abort_web_socket``); tests/transport/test_websocket.py fails if they change.
    """
    if ws._close_reason is not None:
        raise ConnectionClosed(ws._close_reason)
    encode = ws._wsproto.send
    data = b"".join([encode(BytesMessage(data=message)) for message in messages])
    async with ws._stream_lock:
        try:
            await ws._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await ws._abort_web_socket()
            assert ws._close_reason is not None
            raise ConnectionClosed(ws._close_reason) from None


def _reason(exc: ConnectionClosed) -> str:
    reason = exc.reason
    if reason is None:
        return "closed"
    return f"{reason.name} ({reason.code}){': ' + reason.reason if reason.reason else ''}"


@asynccontextmanager
async def client_websocket(
    stream: trio.abc.Stream, host: str, resource: str, max_message_size: int
) -> AsyncIterator[WebSocketConnection]:
    """A websocket over ``stream`` (which it closes), for the body of the ``async with``.

    trio-websocket's reader needs a nursery, and a strict nursery wraps whatever the body
    raises in an exception group; callers catch ``ChannelClosed``, ``HandshakeFailed`` and
    the like, so the one exception that matters is raised as itself.
    """
    raised: BaseException | None = None
    watched = _Watched(stream)
    try:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(CONNECT_TIMEOUT), trio.CancelScope() as upgrade:
                    ws = await wrap_client_stream(
                        # Duck-typed: wrap_client_stream only calls start_soon. A reader
                        # that ends before the upgrade is answered (the stream broke: with
                        # TLS 1.3, the acceptor refusing this node's certificate) means no
                        # answer will come, and trio-websocket would wait for one forever.
                        cast(trio.Nursery, ReaderWatch(nursery, upgrade)),
                        cast(trio.SocketStream, watched),  # trio-websocket only uses Stream
                        host,
                        resource,
                        message_queue_size=WS_QUEUE,
                        max_message_size=max_message_size,
                    )
                if upgrade.cancelled_caught:
                    if watched.error is not None:
                        raise watched.error
                    raise HandshakeError("the peer closed the connection during the upgrade")
            except BaseException:
                await trio.aclose_forcefully(stream)
                raise
            try:
                yield ws
            except BaseException as exc:
                raised = exc
                raise
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(DISCONNECT_TIMEOUT):
                    await ws.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        one = _the_one(group, raised)
        # Keep its cause (an SSL error says why a dial failed), drop the group as context.
        raise one from one.__cause__


class _Watched(trio.abc.Stream):
    """A stream that keeps the error that broke it: trio-websocket's reader swallows it,
    and it is the reason a dial failed (an SSL alert, say)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.error: trio.BrokenResourceError | None = None

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            return await self.stream.receive_some(max_bytes)
        except trio.BrokenResourceError as exc:
            self.error = exc
            raise

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.stream.send_all(data)
        except trio.BrokenResourceError as exc:
            self.error = exc
            raise

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


def _the_one(
    group: BaseExceptionGroup[BaseException], raised: BaseException | None
) -> BaseException:
    """Of a nursery's exceptions: the body's own, else the only one that is not a
    cancellation, else a cancellation (all were), else the group (a real double fault)."""
    leaves = list(_leaves(group))
    if raised is not None and any(leaf is raised for leaf in leaves):
        return raised
    real = [leaf for leaf in leaves if not isinstance(leaf, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    if not real:
        return leaves[0]
    return group


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            yield from _leaves(member)
    else:
        yield exc


class ReaderWatch:
    """Stands in for the nursery given to ``wrap_server_stream`` or ``wrap_client_stream``,
    to see its reader end: the ``upgrade`` scope is cancelled then.

    A reader that ends before the upgrade is done (the other end hung up, sent something
    that is not HTTP, or broke the TLS session) means no request or answer will ever come:
    stop waiting for one now, so that a port scan does not hold a slot until the deadline
    and a refused dial says so at once.
    """

    def __init__(self, nursery: trio.Nursery, upgrade: trio.CancelScope) -> None:
        self.nursery = nursery
        self.upgrade = upgrade

    def start_soon(self, reader: Callable[[], Awaitable[None]]) -> None:
        async def watched() -> None:
            try:
                await reader()
            finally:
                self.upgrade.cancel()  # a no-op once the upgrade scope has exited

        self.nursery.start_soon(watched)
