"""The composition root of a running chatd: listener, runtime, control socket, signals.

Start-up order: bind the peer listener (to learn the real port), build the node, bind the
control socket, then report readiness (log line and ``READY=1``) and join. On SIGTERM or
SIGINT, or a ``leave`` request, the node leaves, the socket file is removed, and
``run_chatd`` returns 0. A second signal stops at once.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from attrs import frozen

from chat.auth import Keyring, SecretError, load_keyring
from chat.exits import EXIT_LISTEN, Fatal
from chat.identity import Identity
from chat.log import Logger
from chat.notify import sd_notify, start_service_tasks
from chat.wire import IrcView, MemberRecord, Message
from chatd.config import Config
from chatd.control.access import ControlAccess
from chatd.control.server import ControlServer
from chatd.control.socket_file import prepare_socket_path
from chatd.core.effects import Role
from chatd.core.node import Node
from chatd.director_client import DirectorClient, DirectorError
from chatd.irc.node import RuntimeNode
from chatd.irc.server import IrcGateway, IrcSettings
from chatd.runtime import Runtime
from chatd.transport import Channel, WebSocketTransport, host_for_url

if TYPE_CHECKING:
    from chatd.tls import PeerTls


@frozen
class Options:
    director: str
    host: str
    port: int
    advertise: str | None
    name: str
    priority: int
    socket: Path
    socket_explicit: bool
    keyring: Keyring | None
    secret_file: str | None = None
    bench_trace: bool = False
    director_cert: str | None = None  # PEM: the one certificate an https director may show
    control_access: ControlAccess | None = None  # None: root and this process's uid
    irc: IrcSettings | None = None  # --irc: the IRC gateway (off by default)


async def run_chatd(options: Options, config: Config, log: Logger) -> int:
    ident = Identity.generate()
    log = log.bind(**{"node-id": ident.node_id, "name": options.name})
    if options.keyring is None:
        log.warning(
            "security.insecure",
            detail="no group secret: any process can join, and links are not encrypted",
        )
    access = options.control_access or ControlAccess(owner=os.getuid())
    prepare_socket_path(options.socket, options.socket_explicit, access.shared)
    director = DirectorClient(
        options.director,
        options.keyring,
        config.director_timeout,
        pinned_cert=options.director_cert,
    )
    transport = WebSocketTransport(
        options.host,
        options.port,
        config.max_frame_bytes,
        handshake_timeout=config.handshake_timeout,
        max_unauthenticated=config.max_unauthenticated_peers,
        log=log,
        tls=_peer_tls(ident, options.keyring) if options.keyring is not None else None,
    )
    try:
        async with trio.open_nursery() as nursery:
            runtime = await _start_node(nursery, options, config, log, ident, transport, director)
            await _serve_locally(nursery, options, runtime, access)

            async def run_then_stop() -> None:
                await runtime.run()
                nursery.cancel_scope.cancel()

            nursery.start_soon(run_then_stop)
            nursery.start_soon(_watch_signals, runtime, nursery.cancel_scope)
            # Started (its handler installed) before READY: SIGHUP's default is to terminate.
            await nursery.start(_watch_reload, options.secret_file, runtime, transport, director)
            sd_notify("READY=1")
            start_service_tasks(nursery, partial(node_status, runtime))
            runtime.log.info(
                "node.ready",
                address=runtime.node.me.address,
                public_address=runtime.node.me.public_address,
                socket=str(options.socket),
                director=director.base_url,
            )
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await director.aclose()
    log.info("node.stopped")
    return 0


async def _start_node(
    nursery: trio.Nursery,
    options: Options,
    config: Config,
    log: Logger,
    ident: Identity,
    transport: WebSocketTransport,
    director: DirectorClient,
) -> Runtime:
    """Bind the peer listener (its real port goes in the member record), then build the
    node and its runtime; incoming peers wait until the runtime exists."""
    started = trio.Event()
    holder: list[Runtime] = []

    async def serve_peer(channel: Channel) -> None:
        await started.wait()
        await holder[0].serve_peers(channel)

    try:
        address: str = await nursery.start(transport.serve, serve_peer)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        where = f"{host_for_url(options.host)}:{options.port}"
        log.error("node.listen_failed", host=options.host, port=options.port, reason=reason)
        raise Fatal(EXIT_LISTEN, f"cannot listen on {where}: {reason}") from None
    me = MemberRecord(
        node_id=ident.node_id,
        name=options.name,
        address=address,
        public_address=options.advertise or address,
        priority=options.priority,
    )
    node = Node(me, ident, config)
    runtime = Runtime(
        node, transport, director, (DirectorError,), options.keyring, config, random.Random(), log
    )
    if options.bench_trace:
        runtime.on_deliver = trace_delivery
    holder.append(runtime)
    started.set()
    return runtime


async def _serve_locally(
    nursery: trio.Nursery, options: Options, runtime: Runtime, access: ControlAccess
) -> None:
    """The IRC gateway (if asked for), then the control socket."""
    irc = None
    if options.irc is not None:
        irc = IrcView(await _start_irc(nursery, options.irc, runtime), options.irc.password)
    control = ControlServer(runtime, options.socket, runtime.log, access, irc)
    await nursery.start(control.serve)


def node_status(runtime: Runtime) -> str:
    """The one line ``systemctl status`` shows for this node (STATUS=): name, role,
    members, term, and what is wrong with the director if anything is."""
    snap = runtime.node.snapshot()
    count = len(snap.members)
    text = (
        f"{snap.name}: {snap.role.value}, {count} member{'' if count == 1 else 's'},"
        f" term {snap.term}"
    )
    if runtime.director_error is not None:
        text += f"; director: {runtime.director_error}"
    return text


async def _start_irc(nursery: trio.Nursery, settings: IrcSettings, runtime: Runtime) -> str:
    """Start the IRC gateway (README: IRC gateway); the address it listens on."""
    gateway = IrcGateway(RuntimeNode(runtime), settings, runtime.log)
    try:
        address: str = await nursery.start(gateway.serve)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        where = f"{host_for_url(settings.host)}:{settings.port}"
        runtime.log.error("irc.listen_failed", address=where, reason=reason)
        raise Fatal(EXIT_LISTEN, f"cannot listen for IRC clients on {where}: {reason}") from None
    return address


def trace_delivery(message: Message) -> None:
    """One JSON line per delivery on stdout, stamped with the host's monotonic clock, so
    a benchmark measures latency inside the node. Ids only, never text."""
    sys.stdout.write(
        f'{{"event":"bench.delivered","id":"{message.id}","t-ns":{time.monotonic_ns()}}}\n'
    )
    sys.stdout.flush()


async def _watch_reload(
    secret_file: str | None,
    runtime: Runtime,
    transport: WebSocketTransport,
    director: DirectorClient,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """On SIGHUP, read the secret file again (README: Rotating the group secret).

    New connections prove with the new first secret and accept every secret in the file;
    links that are up stay up. A file that cannot be used leaves the old keyring in place.
    """
    with trio.open_signal_receiver(signal.SIGHUP) as signals:
        task_status.started()
        async for _ in signals:
            log = runtime.log  # taken now: it carries the current term
            if secret_file is None:
                log.warning("secret.reload_ignored", reason="the node runs --insecure")
                continue
            try:
                keyring = load_keyring(secret_file)
            except SecretError as exc:
                log.error("secret.reload_failed", error=str(exc), kept="the secrets loaded before")
                continue
            old = runtime.keyring
            transport.tls = _peer_tls(runtime.node.identity, keyring)
            runtime.keyring = director.keyring = keyring
            log.info(
                "secret.reloaded",
                secrets=len(keyring.secrets),
                first_changed=old is None or old.primary != keyring.primary,
                links=len(runtime.links),
            )


async def _watch_signals(runtime: Runtime, scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if runtime.node.role is Role.LEAVING:
                runtime.log.warning("node.forced_stop", signal=signal.Signals(signum).name)
                scope.cancel()
                return
            runtime.log.info("node.signal", signal=signal.Signals(signum).name)
            sd_notify("STOPPING=1")
            runtime.request_leave()


def _peer_tls(ident: Identity, keyring: Keyring) -> PeerTls:
    # Imported here: chatd.tls loads cryptography, which a node without a secret never needs.
    from chatd.tls import peer_tls

    return peer_tls(ident, keyring)
