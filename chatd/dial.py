"""Dialing a peer: TCP, then TLS with the node meant pinned, then the websocket upgrade.

Every failure is one ``ConnectError`` whose ``reason`` says which kind it was (refused,
timed out, no route, TLS failure, ...) and whose message says it in full.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import trio
from trio_websocket import HandshakeError

from chat.identity import fingerprint
from chatd.channel import BAD_ADDRESS, WRONG_PEER, Channel, ConnectError
from chatd.link_errors import dial_failure, dial_failure_reason, ssl_error
from chatd.tls_socket import TlsSocketStream
from chatd.websocket import CONNECT_TIMEOUT, WebSocketChannel, client_websocket

if TYPE_CHECKING:  # chatd.tls loads cryptography: only a node with a secret needs it
    from chatd.tls import PeerTls


@asynccontextmanager
async def open_websocket_channel(
    address: str, peer: str | None, tls: PeerTls | None, max_frame_bytes: int
) -> AsyncIterator[Channel]:
    """A channel to ``address``; with ``tls``, to the node ``peer`` only (its key pinned).

    Raises ``ConnectError`` until the websocket is up; after that, the body's own errors
    pass through as they are.
    """
    parts = urlsplit(address)
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
    except ValueError:
        port = 0
    host = parts.hostname
    if parts.scheme not in ("ws", "wss") or not host or not port:
        raise ConnectError(f"not a websocket address: {address!r}", reason=BAD_ADDRESS)
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            tcp = await trio.open_tcp_stream(host, port)
            stream: trio.abc.Stream = tcp
            peer_key = cipher = None
            if tls is not None:
                stream, peer_key, cipher = await _client_tls(tcp, tls, peer)
    except _Impostor as exc:
        raise ConnectError(f"refused {address}: {exc}", reason=WRONG_PEER) from None
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        raise _connect_error(address, exc, tls=tls is not None) from None
    host_header = host if port in (80, 443) else f"{host_for_url(host)}:{port}"
    upgraded = False
    try:
        async with client_websocket(stream, host_header, parts.path or "/", max_frame_bytes) as ws:
            upgraded = True
            yield WebSocketChannel(ws, address, peer_key=peer_key, cipher=cipher)
    except (OSError, HandshakeError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        if upgraded:
            raise
        raise _connect_error(address, exc, tls=tls is not None) from None


def _connect_error(address: str, exc: BaseException, *, tls: bool) -> ConnectError:
    verb = "refused" if ssl_error(exc) is not None else "cannot reach"
    return ConnectError(
        f"{verb} {address}: {dial_failure(exc, tls=tls)}",
        reason=dial_failure_reason(exc, tls=tls),
    )


class _Impostor(Exception):
    """The peer's certificate is not for the node this dial meant to reach."""


async def _client_tls(
    stream: trio.SocketStream, tls: PeerTls, peer: str | None
) -> tuple[TlsSocketStream, bytes | None, str]:
    """TLS over a dialed stream, the handshake done here (before any websocket byte, so a
    refusal is immediate and says why), and ``peer``'s key pinned: ``_Impostor`` if the
    certificate is for another key."""
    from chatd.tls import certificate_key, describe

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


def host_for_url(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
