"""How nodes reach each other: a small interface, and its websocket implementation.

A ``Channel`` carries whole frames (bytes) both ways. The runtime never sees websockets;
tests swap in ``chatd.testing.memory`` to run a cluster in one process.

Unauthenticated connections are bounded, so that anyone who can reach the peer port cannot
hold the node's file descriptors: see ``WebSocketTransport.serve``.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import attrs
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    wrap_client_stream,
    wrap_server_stream,
)

from chatd import log as chat_log
from chatd.identity import fingerprint
from chatd.tls import PeerTls, certificate_key, describe

# trio-websocket's own reader queues this many messages before it stops reading; ours
# drains it continuously, so a small queue is enough.
WS_QUEUE = 16
# How long closing an accepted websocket may wait for the peer's close frame.
DISCONNECT_TIMEOUT = 2.0
# Refusals and accept failures are counted, and logged at most once per this many seconds:
# a flood of connections must not become a flood of log lines.
REPORT_INTERVAL = 5.0
# accept() failing for want of descriptors or memory is temporary (connections close, the
# deadline frees them): wait this long and accept again, as trio's serve_listeners does.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY = 0.1
# The first byte of every TLS connection (a handshake record); no HTTP request starts so.
TLS_HANDSHAKE_RECORD = 0x16
# One dial, TCP connect through TLS and the websocket upgrade, in seconds.
CONNECT_TIMEOUT = 5.0


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
                stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
                peer_key = cipher = None
                if tls is not None:
                    stream, peer_key, cipher = await _client_tls(stream, tls, host, peer)
        except _Impostor as exc:
            raise ConnectError(f"refused {address}: {exc}") from None
        except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            reason = dial_failure(exc, tls=tls is not None)
            verb = "refused" if _ssl_error(exc) is not None else "cannot reach"
            raise ConnectError(f"{verb} {address}: {reason}") from None
        host_header = host if port in (80, 443) else f"{_host_for_url(host)}:{port}"
        upgraded = False
        try:
            async with _client_websocket(
                stream, host_header, parts.path or "/", self.max_frame_bytes
            ) as ws:
                upgraded = True
                yield WebSocketChannel(ws, address, peer_key=peer_key, cipher=cipher)
        except (OSError, HandshakeError, trio.TooSlowError, trio.BrokenResourceError) as exc:
            if upgraded:
                raise
            reason = dial_failure(exc, tls=tls is not None)
            verb = "refused" if _ssl_error(exc) is not None else "cannot reach"
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
            task_status.started(f"{scheme}://{_host_for_url(self.host)}:{port}")

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
                    tallies.accept_failed.add(error=_strerror(exc))
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

        try:
            async with trio.open_nursery() as nursery:
                ws: WebSocketConnection | None = None
                secured: _Secured | None = None
                with trio.move_on_at(deadline) as upgrade:
                    # The client may be gone already (a dial called off mid-handshake, a
                    # reset): that ends this connection only, never the listener.
                    try:
                        secured = await self._secure(stream, tallies)
                        if secured is not None:
                            request = await wrap_server_stream(
                                # Duck-typed: wrap_server_stream only calls start_soon.
                                cast(trio.Nursery, _ReaderWatch(nursery, upgrade)),
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
                        _remote(stream),
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
            await trio.aclose_forcefully(stream)

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
        secured = trio.SSLStream(stream, tls.server, server_side=True)
        try:
            await secured.do_handshake()
        except trio.BrokenResourceError as exc:
            tallies.tls_failed.add(error=tls_failure(exc))
            return None
        return _Secured(
            secured, certificate_key(secured.getpeercert(binary_form=True)), describe(secured)
        )


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


_CLOSED_IN_HANDSHAKE = (
    "the peer closed the connection during the TLS handshake (it may not trust this node's"
    " certificate: another group's secret, or one it no longer holds)"
)


def tls_failure(exc: BaseException) -> str:
    """Why a TLS handshake failed, in words an operator can act on."""
    error = _ssl_error(exc)
    if error is None:
        return _CLOSED_IN_HANDSHAKE
    reason = (error.reason or "").upper()
    if reason == "CERTIFICATE_VERIFY_FAILED":
        return (
            "the peer's certificate is not from this group's secret (another group, a"
            " removed secret, or a man in the middle)"
        )
    if reason in ("TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE"):
        return "the peer refused this node's certificate: it does not hold this node's first secret"
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
        return "the peer does not speak TLS (it runs --insecure)"
    if isinstance(error, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
        return _CLOSED_IN_HANDSHAKE
    return (error.reason or str(error)).lower().replace("_", " ")


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


class _Impostor(Exception):
    """The peer's certificate is not for the node this dial meant to reach."""


async def _client_tls(
    stream: trio.abc.Stream, tls: PeerTls, host: str, peer: str | None
) -> tuple[trio.SSLStream[trio.abc.Stream], bytes | None, str]:
    """TLS over a dialed stream, the handshake done here (before any websocket byte, so a
    refusal is immediate and says why), and ``peer``'s key pinned: ``_Impostor`` if the
    certificate is for another key."""
    secured = trio.SSLStream(stream, tls.client, server_hostname=host)
    try:
        await secured.do_handshake()
        key = certificate_key(secured.getpeercert(binary_form=True))
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


@asynccontextmanager
async def _client_websocket(
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
                        cast(trio.Nursery, _ReaderWatch(nursery, upgrade)),
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


class _ReaderWatch:
    """Stands in for the nursery given to ``wrap_server_stream``, to see its reader end.

    A reader that ends before the upgrade request is read (the client hung up, or sent
    something that is not HTTP) means no request will ever come: stop waiting for one
    now, so that a port scan does not hold a slot until the deadline.
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


def dial_failure(exc: BaseException, *, tls: bool = False) -> str:
    """Why a dial failed, never empty: "connection refused", "timed out", "HTTP 404", ...

    trio-websocket wraps the socket error in a ``HandshakeError`` without a message, and
    trio wraps the per-address errors of a connect in a group; the errno says it best.
    ``tls``: the dial spoke TLS, so a closed connection or an SSL error is explained.
    """
    if isinstance(exc, ConnectionRejected):
        if exc.status_code == 426:
            return (
                "HTTP 426: the peer speaks only TLS (it has a group secret), this node runs"
                " --insecure"
            )
        return f"websocket upgrade refused: HTTP {exc.status_code}"
    if isinstance(exc, ConnectionTimeout | trio.TooSlowError):
        return "timed out"
    if tls and _ssl_error(exc) is not None:
        return tls_failure(exc)
    if isinstance(exc, HandshakeError) and exc.__cause__ is not None:
        return dial_failure(exc.__cause__, tls=tls)
    if isinstance(exc, OSError):
        leaves = _os_errors(exc)
        reasons = list(dict.fromkeys(r for r in map(_strerror, leaves) if r))
        if reasons:
            return "; ".join(reasons)
    if tls and isinstance(exc, trio.BrokenResourceError | HandshakeError):
        return (
            "the connection closed during the TLS handshake (the peer runs --insecure, or"
            " does not hold this node's first secret)"
        )
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
