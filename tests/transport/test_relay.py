"""The recording relay of ``chat_testing.relay`` on loopback sockets, in one process."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import trio

from chat.auth import Keyring
from chat.identity import Identity
from chat_testing.relay import Relay, RelayThread, insider, websocket_payloads
from chatd.tls import peer_tls
from chatd.transport import Channel, ConnectError, WebSocketTransport

SECRET = b"relay-test-secret-0123456789abcdef"


async def echo(stream: trio.SocketStream) -> None:
    """Echo everything, then close once the other end has sent its last byte."""
    async with stream:
        while data := await stream.receive_some():
            await stream.send_all(data)


async def test_a_relay_waits_for_its_target_and_passes_half_closes_on() -> None:
    relay = Relay()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, echo, 0)
        port = await nursery.start(relay.serve)
        client = await trio.open_tcp_stream("127.0.0.1", port)
        await client.send_all(b"before the target is known")
        relay.retarget("127.0.0.1", listeners[0].socket.getsockname()[1])
        await client.send_eof()
        echoed = b""
        while data := await client.receive_some():
            echoed += data
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert echoed == b"before the target is known"
    (capture,) = relay.captures()
    assert capture.to_target == capture.to_client == b"before the target is known"
    assert capture.target_error is None and not capture.open


async def test_websocket_payloads_unmasks_what_the_dialer_sent() -> None:
    async def handler(channel: Channel) -> None:
        await channel.send(b"answer " + await channel.receive())

    server = WebSocketTransport("127.0.0.1", 0, 1 << 20)
    client = WebSocketTransport("127.0.0.1", 0, 1 << 20)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve, handler)
        target = urlsplit(address)
        assert target.hostname is not None and target.port is not None
        relay = Relay((target.hostname, target.port))
        port = await nursery.start(relay.serve)
        async with client.open_channel(f"ws://127.0.0.1:{port}") as channel:
            await channel.send(b"question-1f2e")
            assert await channel.receive() == b"answer question-1f2e"
        nursery.cancel_scope.cancel()
    (capture,) = relay.captures()
    # The dialer masks its frames: the text is not in the raw bytes, only once unmasked.
    assert b"question-1f2e" not in capture.to_target
    assert b"question-1f2e" in (websocket_payloads(capture.to_target) or b"")
    assert b"answer question-1f2e" in capture.to_client
    assert websocket_payloads(b"\x16\x03\x01 not a websocket") is None


async def test_an_insider_man_in_the_middle_is_refused_by_the_pin() -> None:
    node = Identity.generate()
    server = WebSocketTransport("127.0.0.1", 0, 1 << 20, tls=peer_tls(node, Keyring.of(SECRET)))
    client = WebSocketTransport(
        "127.0.0.1", 0, 1 << 20, tls=peer_tls(Identity.generate(), Keyring.of(SECRET))
    )
    termination = insider(SECRET)

    async def handler(channel: Channel) -> None:
        await channel.send(b"never read by the dialer")

    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve, handler)
        target = urlsplit(address)
        assert target.hostname is not None and target.port is not None
        relay = Relay((target.hostname, target.port), termination=termination)
        port = await nursery.start(relay.serve)
        with pytest.raises(ConnectError, match=f"holds the key of node {termination.node_id}"):
            async with client.open_channel(f"wss://127.0.0.1:{port}", node.node_id):
                pass
        nursery.cancel_scope.cancel()
    (capture,) = relay.captures()
    # Both TLS sessions were up, but the dialer checked the pin before sending a byte of
    # its own: the relay read nothing from it, not even the websocket upgrade.
    assert capture.client_error is None and capture.target_error is None
    assert capture.to_target == b""


def test_a_relay_thread_starts_and_stops() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        with RelayThread(Relay()) as relay:
            relay.retarget("127.0.0.1", server.getsockname()[1])
            with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as sock:
                sock.sendall(b"through a thread")
                accepted, _ = server.accept()
                with accepted:
                    accepted.settimeout(5)
                    assert accepted.recv(100) == b"through a thread"
        (capture,) = relay.captures()
        assert capture.to_target == b"through a thread"
        assert relay.address("wss") == f"wss://127.0.0.1:{relay.port}"
