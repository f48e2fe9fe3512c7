"""``TlsSocketStream`` against trio's generic stream checks, and what links rely on."""

from __future__ import annotations

import socket
import ssl
from functools import partial

import pytest
import trio
import trio.testing

from chat.auth import Keyring
from chat.identity import Identity
from chatd.tls import PeerTls, peer_tls
from chatd.tls_socket import TlsSocketStream

SECRET = b"tls-socket-secret-0123456789"


async def tls_pair(
    server: PeerTls | None = None, client: PeerTls | None = None
) -> tuple[TlsSocketStream, TlsSocketStream]:
    """Two ends of one TLS session over a loopback TCP connection."""
    server = server or peer_tls(Identity.generate(), Keyring.of(SECRET))
    client = client or peer_tls(Identity.generate(), Keyring.of(SECRET))
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    ends: dict[str, TlsSocketStream] = {}

    async def accept() -> None:
        raw = await listener.accept()
        ends["server"] = await TlsSocketStream.handshake(raw, server.server, server=True)

    async def dial() -> None:
        raw = await trio.open_tcp_stream("127.0.0.1", port)
        ends["client"] = await TlsSocketStream.handshake(raw, client.client, server=False)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        nursery.start_soon(dial)
    await listener.aclose()
    return ends["client"], ends["server"]


async def test_trio_generic_stream_checks() -> None:
    # No clogged pair: clogging needs a send left blocked, and a send cancelled midway
    # breaks a TLS stream (as trio.SSLStream's does); the blocked-send cases are below.
    await trio.testing.check_two_way_stream(tls_pair, None)


async def test_a_blocked_send_excludes_another_and_ends_on_close() -> None:
    left, right = await tls_pair()
    outcome: list[BaseException] = []

    async def flood() -> None:
        try:
            while True:
                await left.send_all(b"z" * 65536)  # the peer never reads: it blocks
        except trio.ClosedResourceError as exc:
            outcome.append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await left.send_all(b"meanwhile")
            await left.aclose()
    assert len(outcome) == 1
    await right.aclose()


async def test_a_large_payload_both_ways_at_once() -> None:
    left, right = await tls_pair()
    payload = bytes(range(256)) * 8192  # 2 MiB: far over the socket buffers

    async def pump(sender: TlsSocketStream, receiver: TlsSocketStream, into: bytearray) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender.send_all, payload)
            while len(into) < len(payload):
                into += await receiver.receive_some()

    got_right, got_left = bytearray(), bytearray()
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, left, right, got_right)
            nursery.start_soon(pump, right, left, got_left)
    assert got_right == payload and got_left == payload
    await left.aclose()
    assert await right.receive_some() == b""  # close_notify: a clean end of file


async def test_a_receive_takes_every_record_that_has_arrived() -> None:
    """OpenSSL reads one TLS record at a time; a receive returns all that is there, as a
    plain socket's does (frames queued on a link are read in one go)."""
    left, right = await tls_pair()
    for i in range(10):
        await left.send_all(b"%d" % i * 100)  # ten records of 100 bytes
    sent = b"".join(b"%d" % i * 100 for i in range(10))
    # On loopback a send is in the peer's receive queue when send_all returns.
    assert await right.receive_some(4096) == sent
    await left.send_all(b"x" * 50)
    assert await right.receive_some(20) == b"x" * 20  # never more than asked
    assert await right.receive_some() == b"x" * 30
    await left.aclose()
    await right.aclose()


async def test_a_send_cancelled_midway_breaks_the_stream() -> None:
    left, right = await tls_pair()
    with trio.move_on_after(0.5) as cancelled:
        while True:
            await left.send_all(b"y" * 65536)
    assert cancelled.cancelled_caught
    with pytest.raises(trio.BrokenResourceError, match="an earlier write did not finish"):
        await left.send_all(b"more")
    await left.aclose()
    await right.aclose()


async def test_a_receive_cancelled_leaves_the_stream_usable() -> None:
    left, right = await tls_pair()
    with trio.move_on_after(0.1):
        await right.receive_some()
    await left.send_all(b"after")
    assert await right.receive_some() == b"after"
    await left.aclose()
    await right.aclose()


async def test_an_abrupt_end_is_a_broken_stream() -> None:
    left, right = await tls_pair()
    # Close the descriptor without close_notify, as a crashed peer would.
    raw = socket.socket(fileno=left._sock.detach())
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.close()
    with pytest.raises(trio.BrokenResourceError):
        await right.receive_some()
    await right.aclose()


async def test_a_failed_handshake_says_why_and_closes_the_socket() -> None:
    """Each end of a handshake between two groups: a BrokenResourceError whose cause is
    the SSL error, the descriptor closed, and the other end told (a TLS alert)."""
    server = peer_tls(Identity.generate(), Keyring.of(SECRET))
    stranger = peer_tls(Identity.generate(), Keyring.of(b"another-groups-secret-00000"))
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    errors: dict[str, BaseException] = {}
    raws: dict[str, trio.SocketStream] = {}

    async def end(name: str, context: ssl.SSLContext, *, serving: bool) -> None:
        raw = await listener.accept() if serving else await trio.open_tcp_stream("127.0.0.1", port)
        raws[name] = raw
        try:
            await TlsSocketStream.handshake(raw, context, server=serving)
        except trio.BrokenResourceError as exc:
            errors[name] = exc

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(end, "server", server.server, serving=True))
            nursery.start_soon(partial(end, "client", stranger.client, serving=False))
    await listener.aclose()
    assert "CERTIFICATE_VERIFY_FAILED" in repr(errors["client"].__cause__)
    assert "UNKNOWN_CA" in repr(errors["server"].__cause__).upper()
    assert all(raw.socket.fileno() == -1 for raw in raws.values())  # taken over, then closed
