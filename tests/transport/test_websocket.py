"""``WebSocketTransport`` on real loopback sockets, in one process."""

from __future__ import annotations

import errno
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
import trio
from trio_websocket import ConnectionRejected, HandshakeError, open_websocket_url

from chatd import channel, tally, websocket
from chatd.link_errors import dial_failure, dial_failure_reason
from chatd.transport import Channel, ConnectError, Handler, WebSocketTransport


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refused_dial_says_why() -> None:
    transport = WebSocketTransport("127.0.0.1", 0, 1 << 20)
    address = f"ws://127.0.0.1:{free_port()}/"
    with pytest.raises(ConnectError) as caught:
        async with transport.open_channel(address):
            pass
    assert str(caught.value) == f"cannot reach {address}: connection refused"
    assert caught.value.reason == channel.REFUSED


async def test_a_dial_nobody_answers_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel completes the TCP handshake of a listener that never accepts, and then
    nothing answers the upgrade: the dial says it timed out, not that it was refused."""
    monkeypatch.setattr(websocket, "CONNECT_TIMEOUT", 0.2)
    transport = WebSocketTransport("127.0.0.1", 0, 1 << 20)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        address = f"ws://127.0.0.1:{silent.getsockname()[1]}/"
        with trio.fail_after(5), pytest.raises(ConnectError) as caught:
            async with transport.open_channel(address):
                pass
    assert caught.value.reason == channel.TIMED_OUT
    assert str(caught.value) == f"cannot reach {address}: timed out"


async def test_a_dial_to_no_websocket_address_is_a_bad_address() -> None:
    transport = WebSocketTransport("127.0.0.1", 0, 1 << 20)
    with pytest.raises(ConnectError) as caught:
        async with transport.open_channel("http://127.0.0.1:1/"):
            pass
    assert caught.value.reason == channel.BAD_ADDRESS


def test_a_connect_error_always_carries_a_known_reason() -> None:
    with pytest.raises(ValueError, match="not a dial failure reason"):
        ConnectError("cannot reach ws://h:1/", reason="")


def _all_attempts_failed(*errnos: int) -> OSError:
    """As trio's open_tcp_stream raises it: one OSError, caused by a group of attempts."""
    group = ExceptionGroup("attempts", [OSError(e, os.strerror(e)) for e in errnos])
    exc = OSError("all attempts to connect to h:1 failed")
    exc.__cause__ = group
    return exc


def _wrapped(cause: BaseException, outer: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("exc", "tls", "reason"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), False, channel.REFUSED),
        (trio.TooSlowError(), False, channel.TIMED_OUT),
        (OSError(errno.ETIMEDOUT, "timed out"), False, channel.TIMED_OUT),
        (OSError(errno.EHOSTUNREACH, "no route to host"), False, channel.NO_ROUTE),
        (OSError(errno.ENETUNREACH, "network is unreachable"), False, channel.NO_ROUTE),
        (socket.gaierror(-2, "Name or service not known"), False, channel.NOT_RESOLVED),
        (ConnectionRejected(404, (), b""), False, channel.UPGRADE_REFUSED),
        (_all_attempts_failed(errno.EHOSTUNREACH, errno.ECONNREFUSED), False, channel.REFUSED),
        (_all_attempts_failed(errno.ENETUNREACH), False, channel.NO_ROUTE),
        (
            _wrapped(ConnectionRefusedError(errno.ECONNREFUSED, "x"), HandshakeError()),
            False,
            channel.REFUSED,
        ),
        (
            _wrapped(ssl.SSLError(1, "CERTIFICATE_VERIFY_FAILED"), trio.BrokenResourceError()),
            True,
            channel.TLS_FAILED,
        ),
        (trio.BrokenResourceError(), True, channel.TLS_FAILED),
        (trio.BrokenResourceError(), False, channel.CLOSED),
        (OSError(errno.ECONNRESET, "reset"), False, channel.CLOSED),
        (OSError(), False, channel.OTHER),
    ],
)
def test_a_dial_failure_reason_tells_the_kinds_apart(
    exc: BaseException, tls: bool, reason: str
) -> None:
    assert dial_failure_reason(exc, tls=tls) == reason


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (HandshakeError(), "HandshakeError"),
        (trio.TooSlowError(), "timed out"),
        (
            ConnectionRefusedError(111, "Error connecting to ('h', 1): Connection refused"),
            "connection refused",
        ),
        (socket.gaierror(-2, "Name or service not known"), "name or service not known"),
        (ConnectionRejected(404, (), b""), "websocket upgrade refused: HTTP 404"),
        (OSError(), "OSError"),
    ],
)
def test_a_dial_failure_is_never_empty(exc: BaseException, reason: str) -> None:
    assert dial_failure(exc) == reason


# The peer port: unauthenticated connections are bounded ---------------------------------


@pytest.fixture(autouse=True)
def report_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tally, "REPORT_INTERVAL", 1.0)


class RecordingLog:
    """Stands in for the structlog logger: keeps (event, fields) of each warning."""

    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []
        self._logged = trio.Event()

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))
        self._logged.set()

    def counted(self, event: str) -> int:
        return sum(fields["count"] for name, fields in self.warnings if name == event)

    async def wait_counted(self, event: str, count: int) -> None:
        while self.counted(event) < count:
            await self._logged.wait()
            self._logged = trio.Event()


@asynccontextmanager
async def serving(
    handler: Handler, *, handshake_timeout: float = 1.0, cap: int = 2
) -> AsyncIterator[tuple[WebSocketTransport, int, RecordingLog]]:
    log = RecordingLog()
    transport = WebSocketTransport(
        "127.0.0.1",
        0,
        1 << 20,
        handshake_timeout=handshake_timeout,
        max_unauthenticated=cap,
        log=log,
    )
    async with trio.open_nursery() as nursery:
        address: str = await nursery.start(transport.serve, handler)
        port = urlsplit(address).port
        assert port is not None
        yield transport, port, log
        nursery.cancel_scope.cancel()


async def closed_by_server(stream: trio.SocketStream) -> bool:
    """Wait until the server closes ``stream`` (end of file or reset)."""
    try:
        while await stream.receive_some(4096):
            pass
    except trio.BrokenResourceError:
        pass
    return True


async def test_over_the_cap_is_closed_at_once_and_the_rest_at_the_deadline() -> None:
    async def handler(channel: Channel) -> None:
        raise AssertionError("nobody upgrades")

    async with serving(handler, handshake_timeout=1.0, cap=2) as (transport, port, log):
        streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(5)]
        start = trio.current_time()
        closed: list[float] = []

        async def watch(stream: trio.SocketStream) -> None:
            await closed_by_server(stream)
            closed.append(trio.current_time() - start)

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for stream in streams:
                    nursery.start_soon(watch, stream)
        closed.sort()
        assert all(t < 0.5 for t in closed[:3]), closed
        assert all(0.8 <= t < 2 for t in closed[3:]), closed
        assert transport.unauthenticated == 0
        with trio.fail_after(5):
            await log.wait_counted("peer.connections_refused", 5)
        reasons = {f["reason"] for _, f in log.warnings}
        assert reasons == {
            "over the cap of 2 unauthenticated connections",
            "websocket upgrade not done within 1 s",
        }


async def test_one_deadline_from_accept_to_authentication() -> None:
    seen: list[float] = []

    async def handler(channel: Channel) -> None:
        seen.append(channel.deadline - trio.current_time())

    async with serving(handler, handshake_timeout=1.0) as (_, port, _log):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await trio.sleep(0.4)  # a slow client: the upgrade takes part of the deadline
        await stream.send_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        with trio.fail_after(5):
            await closed_by_server(stream)
    (left,) = seen
    assert 0 < left <= 0.6, left


async def test_authenticated_links_are_not_counted() -> None:
    async def handler(channel: Channel) -> None:
        channel.authenticated()
        await trio.sleep_forever()

    async with serving(handler, cap=1) as (transport, port, _log):
        address = f"ws://127.0.0.1:{port}/"
        with trio.fail_after(5):
            async with (
                open_websocket_url(address) as one,
                open_websocket_url(address) as two,
                open_websocket_url(address) as three,
            ):
                assert not one.closed and not two.closed and not three.closed
                assert transport.unauthenticated == 0


async def test_out_of_descriptors_the_listener_waits_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = 3
    accept = trio.SocketListener.accept

    async def flaky_accept(self: trio.SocketListener) -> trio.SocketStream:
        nonlocal failures
        if failures > 0:
            failures -= 1
            await trio.lowlevel.checkpoint()
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return await accept(self)

    monkeypatch.setattr(trio.SocketListener, "accept", flaky_accept)
    reached = trio.Event()

    async def handler(channel: Channel) -> None:
        reached.set()

    async with serving(handler) as (_, port, log):
        with trio.fail_after(5):
            async with open_websocket_url(f"ws://127.0.0.1:{port}/"):
                await reached.wait()
            await log.wait_counted("peer.accept_failed", 3)
    assert {f["error"] for e, f in log.warnings if e == "peer.accept_failed"} == {
        "too many open files"
    }
    # Logged at the first, then once with the rest a report interval later.
    assert [f["count"] for _, f in log.warnings] == [1, 2]


async def test_a_client_that_hangs_up_frees_its_slot_at_once() -> None:
    async def handler(channel: Channel) -> None:
        raise AssertionError("nobody upgrades")

    async with serving(handler, handshake_timeout=10.0, cap=2) as (transport, port, log):
        for data in (b"", b"not http at all\r\n\r\n"):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(data)
            await stream.aclose()
        with trio.fail_after(2):  # not the 10 s deadline
            while transport.unauthenticated:  # noqa: ASYNC110 (a counter, not an event)
                await trio.sleep(0.01)
    assert log.warnings == []  # a port scan is not worth a log line


async def test_garbage_then_a_reset_ends_that_connection_only() -> None:
    # trio-websocket answers a request that is not HTTP with a 400; on a connection reset
    # meanwhile, that send raises from its reader task, which once ended the listener.
    served = trio.Event()

    async def handler(channel: Channel) -> None:
        served.set()

    async with serving(handler, cap=500) as (_, port, _log):
        for i in range(200):
            with socket.socket() as sock:
                sock.connect(("127.0.0.1", port))
                sock.sendall(b"\x16\x03\x01 not http\r\n\r\n" * 50)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                await trio.sleep(0.001 * (i % 5))
        # Still serving.
        with trio.fail_after(5):
            async with open_websocket_url(f"ws://127.0.0.1:{port}/"):
                await served.wait()
