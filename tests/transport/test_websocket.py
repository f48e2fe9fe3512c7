"""``WebSocketTransport`` on real loopback sockets, in one process."""

from __future__ import annotations

import socket

import pytest
import trio
from trio_websocket import ConnectionRejected, HandshakeError

from chatd.transport import ConnectError, WebSocketTransport, dial_failure


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
