"""A recording TCP relay for tests: it sits on the connections peers open to a node and
keeps every byte, so a test can read exactly what crosses the wire.

Start a node with ``--advertise`` set to the relay's address and point the relay at the
node's real port (``retarget``): every other node then dials the relay, which dials the
node and pumps bytes both ways, keeping a copy of each direction of each connection in
memory (``captures``). The target may be set after the relay listens, so that the node
can pick its own port: a connection that comes first waits for it.

With a ``Termination`` the relay is a man in the middle that terminates TLS: it accepts
TLS with a certificate of its own choosing and, at the same time, dials the node with TLS
too; only if both handshakes succeed does it relay (and record) the plaintext between the
two sessions. ``outsider()`` holds no group secret (a self-signed Ed25519 certificate);
``insider(secret, identity)`` holds the secret and presents a certificate for its own key
issued by the group authority, the best a member of the group could forge.

``Relay.serve`` runs in a trio program; ``RelayThread`` runs a relay in a thread of its
own for the synchronous end-to-end tests (``tests/e2e/test_privacy.py``).

``websocket_payloads`` reads a plaintext capture: the payloads of its websocket frames,
unmasked (a websocket client masks every frame it sends, so a text it sends does not
appear in the raw bytes even without TLS).
"""

from __future__ import annotations

import ssl
import threading
from contextlib import suppress
from typing import Any, Self

import attrs
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from chat.auth import Keyring
from chat.identity import Identity
from chatd.link_errors import tls_failure
from chatd.tls import NOT_AFTER, NOT_BEFORE, load_chain, peer_tls

# How long a connection waits for the relay to be given a target, and how long dialing
# the target and each TLS handshake may take.
TARGET_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 5.0
CHUNK = 65536
# Network errors that end one relayed connection, never the relay.
ENDED = (OSError, trio.BrokenResourceError, trio.ClosedResourceError)


@attrs.frozen
class Termination:
    """How a man in the middle terminates TLS: the context it shows dialers, the one it
    dials the target with, and the node-id its certificate's key stands for."""

    server: ssl.SSLContext
    client: ssl.SSLContext
    node_id: str


def outsider(ident: Identity | None = None) -> Termination:
    """A man in the middle without the group secret: a self-signed certificate for its
    own Ed25519 key. It accepts any dialer and any target (it verifies nothing)."""
    ident = ident or Identity.generate()
    public = ident.private_key.public_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ident.node_id)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .sign(ident.private_key, None)
    )
    chain = certificate.public_bytes(serialization.Encoding.PEM) + ident.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server = _context(ssl.PROTOCOL_TLS_SERVER, chain)
    client = _context(ssl.PROTOCOL_TLS_CLIENT, chain)
    return Termination(server, client, ident.node_id)


def insider(secret: bytes, ident: Identity | None = None) -> Termination:
    """A man in the middle that holds the group secret: a certificate for its own key,
    issued by the group authority, and trusting it (the contexts a node would have)."""
    ident = ident or Identity.generate()
    tls = peer_tls(ident, Keyring.of(secret))
    return Termination(tls.server, tls.client, ident.node_id)


def _context(protocol: int, chain: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    load_chain(context, chain)
    return context


@attrs.frozen
class Capture:
    """What one relayed connection carried so far (plaintext when terminating TLS)."""

    number: int
    to_target: bytes  # sent by the dialer
    to_client: bytes  # sent back by the target
    client_error: str | None  # why the TLS handshake with the dialer failed
    target_error: str | None  # why reaching the target (or its TLS handshake) failed
    open: bool


@attrs.define
class _Connection:
    number: int
    to_target: bytearray = attrs.field(factory=bytearray)
    to_client: bytearray = attrs.field(factory=bytearray)
    client_error: str | None = None
    target_error: str | None = None
    open: bool = True


class Relay:
    """Listens on ``host`` (a free port); relays each connection to the target."""

    def __init__(
        self,
        target: tuple[str, int] | None = None,
        *,
        termination: Termination | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = 0
        self.termination = termination
        self._target = target
        self._targeted = trio.Event()
        if target is not None:
            self._targeted.set()
        # Connections are recorded in the relay's trio thread and read from any thread.
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []

    def retarget(self, host: str, port: int) -> None:
        """Dial ``host:port`` from now on (call it in the relay's trio thread)."""
        self._target = (host, port)
        self._targeted.set()

    def captures(self) -> list[Capture]:
        """Every connection so far, in the order accepted (thread-safe)."""
        with self._lock:
            return [
                Capture(
                    c.number,
                    bytes(c.to_target),
                    bytes(c.to_client),
                    c.client_error,
                    c.target_error,
                    c.open,
                )
                for c in self._connections
            ]

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Relay connections until cancelled; ``task_status.started(port)``."""
        listeners = await trio.open_tcp_listeners(0, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._relay, listeners)
            task_status.started(self.port)

    async def _relay(self, client: trio.SocketStream) -> None:
        with self._lock:
            connection = _Connection(len(self._connections) + 1)
            self._connections.append(connection)
        try:
            async with client:
                target = await self._dial(connection)
                if target is None:
                    return
                async with target:
                    if self.termination is None:
                        await self._pump(client, target, connection)
                    else:
                        await self._intercept(client, target, connection, self.termination)
        except ENDED:
            pass
        finally:
            connection.open = False

    async def _dial(self, connection: _Connection) -> trio.SocketStream | None:
        with trio.move_on_after(TARGET_TIMEOUT):
            await self._targeted.wait()
        if self._target is None:
            connection.target_error = "the relay was given no target"
            return None
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                return await trio.open_tcp_stream(*self._target)
        except (OSError, trio.TooSlowError) as exc:
            connection.target_error = f"cannot reach the target: {exc!r}"
            return None

    async def _intercept(
        self,
        client: trio.SocketStream,
        target: trio.SocketStream,
        connection: _Connection,
        termination: Termination,
    ) -> None:
        near = trio.SSLStream(client, termination.server, server_side=True)
        far = trio.SSLStream(target, termination.client)
        errors: dict[str, str] = {}

        async def handshake(side: str, stream: trio.SSLStream[trio.SocketStream]) -> None:
            # Each side runs to its end whatever the other does, so that both the dialer
            # and the target get to judge the relay's certificate.
            try:
                with trio.fail_after(HANDSHAKE_TIMEOUT):
                    await stream.do_handshake()
            except trio.TooSlowError:
                errors[side] = "timed out"
            except trio.BrokenResourceError as exc:
                errors[side] = tls_failure(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(handshake, "client", near)
            nursery.start_soon(handshake, "target", far)
        with self._lock:
            connection.client_error = errors.get("client")
            connection.target_error = errors.get("target")
        if not errors:
            await self._pump(near, far, connection)

    async def _pump(
        self, client: trio.abc.Stream, target: trio.abc.Stream, connection: _Connection
    ) -> None:
        async with trio.open_nursery() as nursery:
            done = nursery.cancel_scope
            nursery.start_soon(self._copy, client, target, connection.to_target, done)
            nursery.start_soon(self._copy, target, client, connection.to_client, done)

    async def _copy(
        self,
        source: trio.abc.Stream,
        sink: trio.abc.Stream,
        record: bytearray,
        done: trio.CancelScope,
    ) -> None:
        try:
            while chunk := await source.receive_some(CHUNK):
                with self._lock:
                    record += chunk
                await sink.send_all(chunk)
            # The end of one direction: pass it on, and keep relaying the other one
            # when the sink can half-close (plain TCP); TLS cannot, so end both.
            if isinstance(sink, trio.abc.HalfCloseableStream):
                await sink.send_eof()
                return
            with suppress(*ENDED):
                await sink.aclose()
        except ENDED:
            pass
        done.cancel()


class RelayThread:
    """A ``Relay`` run by ``trio.run`` in a thread of its own, for synchronous tests.

    Use as a context manager: the relay listens on entry and stops on exit.
    """

    def __init__(self, relay: Relay, timeout: float = 10.0) -> None:
        self.relay = relay
        self.timeout = timeout
        self._started = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._started.wait(self.timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the relay did not start: {self._error!r}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self.relay.port

    def address(self, scheme: str) -> str:
        """The relay's address as a node advertises it: ``wss://127.0.0.1:PORT``."""
        return f"{scheme}://{self.relay.host}:{self.port}"

    def retarget(self, host: str, port: int) -> None:
        assert self._token is not None, "the relay is not running"
        trio.from_thread.run_sync(self.relay.retarget, host, port, trio_token=self._token)

    def captures(self) -> list[Capture]:
        return self.relay.captures()

    def stop(self) -> None:
        if self._token is not None and self._scope is not None:
            with suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        if self._thread.ident is not None:
            self._thread.join(self.timeout)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()  # wakes a start that failed

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            self._scope = scope
            async with trio.open_nursery() as nursery:
                await nursery.start(self.relay.serve)
                self._started.set()


def websocket_payloads(data: bytes) -> bytes | None:
    """The payloads of the websocket frames in one direction of a plaintext capture,
    unmasked and joined; None if ``data`` does not start as a websocket upgrade (a
    request or a 101 answer). A frame cut off at the end of the capture counts as far
    as it goes."""
    head, blank, rest = data.partition(b"\r\n\r\n")
    if not blank or not (head.startswith(b"GET ") or head.startswith(b"HTTP/1.1 101")):
        return None
    out = bytearray()
    at = 0
    while at + 2 <= len(rest):
        second = rest[at + 1]
        length = second & 0x7F
        at += 2
        if length >= 126:
            size = 2 if length == 126 else 8
            length = int.from_bytes(rest[at : at + size], "big")
            at += size
        mask = b""
        if second & 0x80:
            mask = rest[at : at + 4]
            at += 4
        payload = rest[at : at + length]
        at += length
        if mask:
            keystream = (mask * (len(payload) // 4 + 1))[: len(payload)]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(
                len(payload), "big"
            )
        out += payload
    return bytes(out)
