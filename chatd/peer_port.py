"""The peer port: accepting links, with unauthenticated connections bounded.

A connection that has not proved itself costs a descriptor and a task, and anyone who can
reach the port can open one; see ``PeerPort.serve``. With a group secret the port takes TLS
only, without one plaintext only: the first byte says which a peer speaks, and the other
kind is refused, counted and logged with its reason.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import attrs
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_server_stream

from chat.log import WarningLog
from chatd.channel import Handler
from chatd.link_errors import strerror, tls_failure
from chatd.tally import Tally
from chatd.tls_socket import TlsSocketStream

if TYPE_CHECKING:  # chatd.tls loads cryptography: only a node with a secret needs it
    from chatd.tls import PeerTls
from chatd.websocket import DISCONNECT_TIMEOUT, WS_QUEUE, ReaderWatch, WebSocketChannel

# accept() failing for want of descriptors or memory is temporary (connections close, the
# deadline frees them): wait this long and accept again, as trio's serve_listeners does.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY = 0.1
# The first byte of every TLS connection (a handshake record); no HTTP request starts so.
TLS_HANDSHAKE_RECORD = 0x16

# Why the peer port refused a connection (``peer.connections_refused`` lines).
REFUSED_PLAINTEXT = (
    "a connection without TLS: the peer runs --insecure, this node has a group secret"
)
REFUSED_TLS = "a TLS connection: the peer has a group secret, this node runs --insecure"
REFUSED_TLS_FAILED = "TLS handshake failed"


def stalled_reason(timeout: float, *, tls: bool) -> str:
    what = "TLS handshake and websocket upgrade" if tls else "websocket upgrade"
    return f"{what} not done within {timeout:g} s"


# The answer to a plaintext websocket upgrade on a TLS port; the dialer logs its status.
UPGRADE_REQUIRED = (
    b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: TLS/1.3\r\nConnection: close\r\n"
    b"Content-Length: 0\r\n\r\n"
)


class PeerPort:
    """Accepts peers on listeners and hands each channel to a handler.

    ``tls`` is asked at each accept (a reloaded keyring applies to the next connection; a
    connection keeps the contexts it was opened with).
    """

    def __init__(
        self,
        *,
        max_frame_bytes: int,
        handshake_timeout: float,
        max_unauthenticated: int,
        log: WarningLog,
        tls: Callable[[], PeerTls | None],
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.handshake_timeout = handshake_timeout
        self.max_unauthenticated = max_unauthenticated
        self.log = log
        self.tls = tls
        # Accepted connections not yet authenticated (or closed): each holds a descriptor.
        self.unauthenticated = 0

    async def serve(
        self, listeners: list[trio.SocketListener], handler: Handler, nursery: trio.Nursery
    ) -> None:
        """Start accepting on ``listeners`` in ``nursery``, until it is cancelled.

        Until ``channel.authenticated()``:

        - at most ``max_unauthenticated`` are open at once; one more is closed as soon as
          it is accepted (and counted in a ``peer.connections_refused`` line, at most one
          per ``chatd.tally.REPORT_INTERVAL``);
        - each has ONE deadline, ``handshake_timeout`` after the TCP accept, for the whole
          path: the HTTP upgrade (enforced here; a stalled one is closed and counted) and
          then hello/auth (enforced by the handler, which is given it as
          ``channel.deadline``, so that it can log why it refused the peer).

        The slot is released when the handler calls ``channel.authenticated()`` (an
        authenticated link is never counted) or returns, whichever comes first.
        """
        tallies = _Tallies(
            self.log,
            nursery,
            self.max_unauthenticated,
            self.handshake_timeout,
            tls=self.tls() is not None,
        )
        for listener in listeners:
            nursery.start_soon(self._accept_loop, listener, handler, nursery, tallies)

    async def _accept_loop(
        self,
        listener: trio.SocketListener,
        handler: Handler,
        nursery: trio.Nursery,
        tallies: _Tallies,
    ) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                        raise
                    # Out of descriptors: the node goes on; accepting resumes once some close.
                    tallies.accept_failed.add(error=strerror(exc))
                    await trio.sleep(ACCEPT_RETRY)
                    continue
                if self.unauthenticated >= self.max_unauthenticated:
                    await trio.aclose_forcefully(stream)
                    tallies.refused.add()
                    continue
                self.unauthenticated += 1
                deadline = trio.current_time() + self.handshake_timeout
                nursery.start_soon(self._serve_connection, stream, handler, deadline, tallies)

    async def _serve_connection(
        self, stream: trio.SocketStream, handler: Handler, deadline: float, tallies: _Tallies
    ) -> None:
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.unauthenticated -= 1

        remote = _remote(stream)
        secured: _Secured | None = None
        try:
            async with trio.open_nursery() as nursery:
                ws: WebSocketConnection | None = None
                with trio.move_on_at(deadline) as upgrade:
                    # The client may be gone already (a dial called off mid-handshake, a
                    # reset): that ends this connection only, never the listener.
                    try:
                        secured = await self._secure(stream, tallies)
                        if secured is not None:
                            ws = await self._upgrade(secured, nursery, upgrade)
                    except (ConnectionClosed, OSError, trio.BrokenResourceError):
                        ws = None
                if ws is None or secured is None:
                    if upgrade.cancelled_caught and trio.current_time() >= deadline:
                        tallies.stalled.add()
                    nursery.cancel_scope.cancel()  # the websocket's reader task
                    return
                try:
                    channel = WebSocketChannel(
                        ws,
                        remote,
                        deadline,
                        release,
                        peer_key=secured.peer_key,
                        cipher=secured.cipher,
                    )
                    await handler(channel)
                finally:
                    with trio.move_on_after(DISCONNECT_TIMEOUT):
                        await ws.aclose()
                    nursery.cancel_scope.cancel()
        except* (ConnectionClosed, OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            # E.g. trio-websocket's reader answering garbage with a 400 on a connection
            # already reset: it ends this connection, and must never end the listener.
            pass
        finally:
            release()
            # The TLS stream owns the socket once the handshake took it over.
            await trio.aclose_forcefully(secured.stream if secured is not None else stream)

    async def _upgrade(
        self, secured: _Secured, nursery: trio.Nursery, upgrade: trio.CancelScope
    ) -> WebSocketConnection:
        request = await wrap_server_stream(
            # Duck-typed: wrap_server_stream only calls start_soon.
            cast(trio.Nursery, ReaderWatch(nursery, upgrade)),
            secured.stream,
            message_queue_size=WS_QUEUE,
            max_message_size=self.max_frame_bytes,
        )
        return await request.accept()

    async def _secure(self, stream: trio.SocketStream, tallies: _Tallies) -> _Secured | None:
        """The stream to speak websocket over: TLS when this node has a secret, refusing
        (and counting) a peer that speaks the other way; None when refused."""
        first = await stream.socket.recv(1, socket.MSG_PEEK)
        if not first:
            return None  # closed before a byte
        tls = self.tls()
        speaks_tls = first[0] == TLS_HANDSHAKE_RECORD
        if tls is None:
            if speaks_tls:
                tallies.tls_unwanted.add()
                return None
            return _Secured(stream, None, None)
        if not speaks_tls:
            # Say why in HTTP, which the insecure dialer reads: a 426 it logs as such.
            tallies.plaintext.add()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await stream.receive_some(65536)
                await stream.send_all(UPGRADE_REQUIRED)
            return None
        from chatd.tls import certificate_key, describe

        try:
            secured = await TlsSocketStream.handshake(stream, tls.server, server=True)
        except trio.BrokenResourceError as exc:
            tallies.tls_failed.add(error=tls_failure(exc))
            return None
        return _Secured(secured, certificate_key(secured.getpeercert()), describe(secured))


@attrs.frozen
class _Secured:
    stream: trio.abc.Stream
    peer_key: bytes | None
    cipher: str | None


class _Tallies:
    """What the peer port refuses, counted by reason (see ``chatd.tally.Tally``)."""

    def __init__(
        self,
        log: WarningLog,
        nursery: trio.Nursery,
        max_unauthenticated: int,
        timeout: float,
        *,
        tls: bool,
    ) -> None:
        def tally(reason: str) -> Tally:
            return Tally(log, "peer.connections_refused", nursery, reason=reason)

        self.refused = tally(f"over the cap of {max_unauthenticated} unauthenticated connections")
        self.stalled = tally(stalled_reason(timeout, tls=tls))
        self.plaintext = tally(REFUSED_PLAINTEXT)
        self.tls_unwanted = tally(REFUSED_TLS)
        self.tls_failed = tally(REFUSED_TLS_FAILED)
        self.accept_failed = Tally(log, "peer.accept_failed", nursery)


def _remote(stream: trio.SocketStream) -> str:
    try:
        host, port, *_ = stream.socket.getpeername()
    except OSError:
        return "unknown"
    return f"{host}:{port}"
