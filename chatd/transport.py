"""How nodes reach each other: a small interface, and its websocket implementation.

A ``Channel`` carries whole frames (bytes) both ways. The runtime never sees websockets;
tests swap in ``chat_testing.memory`` to run a cluster in one process. With a group
secret every connection is TLS 1.3 (``chatd.tls``), checked before the websocket upgrade:
a dial pins the node it means to reach, and the peer port takes TLS only (a node without
a secret, plaintext only); either refusal is logged with its reason on both ends.

Unauthenticated connections are bounded, so that anyone who can reach the peer port cannot
hold the node's file descriptors: see ``WebSocketTransport.serve``.
"""

from __future__ import annotations

import contextlib
import errno
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    wrap_server_stream,
)

from chat import log as chat_log
from chat.identity import fingerprint
from chatd.link_errors import dial_failure, ssl_error, strerror, tls_failure
from chatd.tls import PeerTls, certificate_key, describe
from chatd.tls_socket import TlsSocketStream
from chatd.websocket import (
    CONNECT_TIMEOUT,
    DISCONNECT_TIMEOUT,
    WS_QUEUE,
    ReaderWatch,
    client_websocket,
)

# Refusals and accept failures are counted, and logged at most once per this many seconds:
# a flood of connections must not become a flood of log lines.
REPORT_INTERVAL = 5.0
# accept() failing for want of descriptors or memory is temporary (connections close, the
# deadline frees them): wait this long and accept again, as trio's serve_listeners does.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY = 0.1
# The first byte of every TLS connection (a handshake record); no HTTP request starts so.
TLS_HANDSHAKE_RECORD = 0x16


class ChannelClosed(Exception):
    """The other end went away (or the channel was closed locally)."""


class ConnectError(OSError):
    """A peer address could not be reached; the message says why."""


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

    async def receive(self) -> bytes:
        """Wait for the next frame; raises ``ChannelClosed``."""

    async def aclose(self) -> None: ...


Handler = Callable[[Channel], Awaitable[None]]


class Transport(Protocol):
    def open_channel(self, address: str, peer: str | None = None) -> Any:
        """``async with transport.open_channel(address, peer) as channel``; raises
        ``ConnectError``. ``peer``: the node-id meant, refused if another answers."""

    async def serve(self, handler: Handler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Accept channels forever, each handled by ``handler`` in its own task.

        ``task_status.started(address)`` reports the address really bound. The handler
        must finish the handshake by ``channel.deadline`` (or give up), then call
        ``channel.authenticated()``.
        """


class WebSocketChannel:
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
    def __init__(
        self,
        host: str,
        port: int,
        max_frame_bytes: int,
        *,
        handshake_timeout: float = 5.0,
        max_unauthenticated: int = 64,
        log: Any = None,
        tls: PeerTls | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_frame_bytes = max_frame_bytes
        self.handshake_timeout = handshake_timeout
        self.max_unauthenticated = max_unauthenticated
        self.log = log if log is not None else chat_log.get_logger()
        # Accepted connections not yet authenticated (or closed): each holds a descriptor.
        self.unauthenticated = 0
        # None: plain websockets (--insecure). Replaced when the keyring is reloaded; a
        # connection keeps the contexts it was opened with.
        self.tls = tls

    @asynccontextmanager
    async def open_channel(self, address: str, peer: str | None = None) -> AsyncIterator[Channel]:
        """A channel to ``address``; with TLS, to the node ``peer`` only (its key pinned)."""
        parts = urlsplit(address)
        try:
            port = parts.port or (443 if parts.scheme == "wss" else 80)
        except ValueError:
            port = 0
        host = parts.hostname
        if parts.scheme not in ("ws", "wss") or not host or not port:
            raise ConnectError(f"not a websocket address: {address!r}")
        # The node's own mode decides, not the scheme: a secure node speaks TLS to every
        # peer, so that an insecure one sees (and logs) a TLS connection it cannot take.
        tls = self.tls
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                tcp = await trio.open_tcp_stream(host, port)
                stream: trio.abc.Stream = tcp
                peer_key = cipher = None
                if tls is not None:
                    stream, peer_key, cipher = await _client_tls(tcp, tls, peer)
        except _Impostor as exc:
            raise ConnectError(f"refused {address}: {exc}") from None
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            reason = dial_failure(exc, tls=tls is not None)
            verb = "refused" if ssl_error(exc) is not None else "cannot reach"
            raise ConnectError(f"{verb} {address}: {reason}") from None
        host_header = host if port in (80, 443) else f"{host_for_url(host)}:{port}"
        upgraded = False
        try:
            async with client_websocket(
                stream, host_header, parts.path or "/", self.max_frame_bytes
            ) as ws:
                upgraded = True
                yield WebSocketChannel(ws, address, peer_key=peer_key, cipher=cipher)
        except (OSError, HandshakeError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            if upgraded:
                raise
            reason = dial_failure(exc, tls=tls is not None)
            verb = "refused" if ssl_error(exc) is not None else "cannot reach"
            raise ConnectError(f"{verb} {address}: {reason}") from None

    async def serve(self, handler: Handler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Accept peers until cancelled; unauthenticated connections are bounded.

        A connection that has not proved itself costs a descriptor and a task, and anyone
        who can reach the port can open one, so until ``channel.authenticated()``:

        - at most ``max_unauthenticated`` are open at once; one more is closed as soon as
          it is accepted (and counted in a ``peer.connections_refused`` line, at most one
          per ``REPORT_INTERVAL``);
        - each has ONE deadline, ``handshake_timeout`` after the TCP accept, for the whole
          path: the HTTP upgrade (enforced here; a stalled one is closed and counted) and
          then hello/auth (enforced by the handler, which is given it as
          ``channel.deadline``, so that it can log why it refused the peer).

        The slot is released when the handler calls ``channel.authenticated()`` (an
        authenticated link is never counted) or returns, whichever comes first.
        """
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            tallies = _Tallies(
                self.log,
                nursery,
                self.max_unauthenticated,
                self.handshake_timeout,
                tls=self.tls is not None,
            )
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener, handler, nursery, tallies)
            scheme = "ws" if self.tls is None else "wss"
            task_status.started(f"{scheme}://{host_for_url(self.host)}:{port}")

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
                            request = await wrap_server_stream(
                                # Duck-typed: wrap_server_stream only calls start_soon.
                                cast(trio.Nursery, ReaderWatch(nursery, upgrade)),
                                secured.stream,
                                message_queue_size=WS_QUEUE,
                                max_message_size=self.max_frame_bytes,
                            )
                            ws = await request.accept()
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

    async def _secure(self, stream: trio.SocketStream, tallies: _Tallies) -> _Secured | None:
        """The stream to speak websocket over: TLS when this node has a secret, refusing
        (and counting) a peer that speaks the other way; None when refused."""
        first = await stream.socket.recv(1, socket.MSG_PEEK)
        if not first:
            return None  # closed before a byte
        tls = self.tls
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
    """What the peer port refuses, counted by reason (see ``_Tally``)."""

    def __init__(
        self,
        log: Any,
        nursery: trio.Nursery,
        max_unauthenticated: int,
        timeout: float,
        *,
        tls: bool,
    ) -> None:
        def tally(reason: str) -> _Tally:
            return _Tally(log, "peer.connections_refused", nursery, reason=reason)

        self.refused = tally(f"over the cap of {max_unauthenticated} unauthenticated connections")
        self.stalled = tally(stalled_reason(timeout, tls=tls))
        self.plaintext = tally(REFUSED_PLAINTEXT)
        self.tls_unwanted = tally(REFUSED_TLS)
        self.tls_failed = tally(REFUSED_TLS_FAILED)
        self.accept_failed = _Tally(log, "peer.accept_failed", nursery)


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


def _remote(stream: trio.SocketStream) -> str:
    try:
        host, port, *_ = stream.socket.getpeername()
    except OSError:
        return "unknown"
    return f"{host}:{port}"


class _Impostor(Exception):
    """The peer's certificate is not for the node this dial meant to reach."""


async def _client_tls(
    stream: trio.SocketStream, tls: PeerTls, peer: str | None
) -> tuple[TlsSocketStream, bytes | None, str]:
    """TLS over a dialed stream, the handshake done here (before any websocket byte, so a
    refusal is immediate and says why), and ``peer``'s key pinned: ``_Impostor`` if the
    certificate is for another key."""
    secured = await TlsSocketStream.handshake(stream, tls.client, server=False)
    try:
        key = certificate_key(secured.getpeercert())
        if peer is not None and (key is None or fingerprint(key) != peer):
            found = "no Ed25519 key" if key is None else f"the key of node {fingerprint(key)}"
            raise _Impostor(
                f"its certificate holds {found}, not node {peer}'s: a man in the middle, or"
                " another node at that address"
            )
    except BaseException:
        await trio.aclose_forcefully(secured)
        raise
    return secured, key, describe(secured)


class _Tally:
    """Counts like events and logs them at most once per ``REPORT_INTERVAL``, with a count.

    The first of a burst is logged at once, the rest in one line per interval: one line
    per refused connection would let whoever floods the port flood the log too.
    """

    def __init__(self, log: Any, event: str, nursery: trio.Nursery, **fields: Any) -> None:
        self.log = log
        self.event = event
        self.nursery = nursery
        self.fields = fields
        self.counts: dict[str, int] = {}
        self._last = -math.inf
        self._pending = False

    def add(self, error: str = "") -> None:
        self.counts[error] = self.counts.get(error, 0) + 1
        if not self._pending:
            self._pending = True
            self.nursery.start_soon(self._report)

    async def _report(self) -> None:
        await trio.sleep_until(max(self._last + REPORT_INTERVAL, trio.current_time()))
        self._last = trio.current_time()
        counts, self.counts, self._pending = self.counts, {}, False
        for error, count in counts.items():
            extra = {"error": error} if error else {}
            self.log.warning(
                self.event, count=count, interval=REPORT_INTERVAL, **self.fields, **extra
            )


def host_for_url(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
