"""The gateway's listener and options: the clients cap, --irc addresses, the password file."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
import trio
import trio.testing

from chatd.irc.server import (
    IrcGateway,
    IrcOptionError,
    IrcSettings,
    load_password,
    parse_address,
)
from tests.irc.test_session import PASSWORD, FakeNode


async def test_one_client_over_the_cap_is_told_and_closed() -> None:
    settings = IrcSettings("127.0.0.1", 0, PASSWORD, clients_max=2)
    gateway = IrcGateway(FakeNode(), settings, structlog.get_logger())
    async with trio.open_nursery() as nursery:
        address = await nursery.start(gateway.serve)
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        first = await trio.open_tcp_stream(host, int(port))
        second = await trio.open_tcp_stream(host, int(port))
        with trio.fail_after(10):
            while gateway.clients < 2:
                await trio.testing.wait_all_tasks_blocked()
        third = await trio.open_tcp_stream(host, int(port))
        answer = b""
        with trio.fail_after(10):
            while chunk := await third.receive_some(4096):
                answer += chunk
        assert answer == b"ERROR :Too many clients (2); try later\r\n"
        # The two served are unaffected.
        await first.send_all(b"PING x\r\n")
        with trio.fail_after(10):
            assert await first.receive_some(4096) == b":chatd PONG chatd x\r\n"
        for stream in (first, second, third):
            await stream.aclose()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:6667", ("127.0.0.1", 6667)),
        ("127.1.2.3:0", ("127.1.2.3", 0)),
        ("[::1]:6667", ("::1", 6667)),
        ("localhost:7000", ("localhost", 7000)),
    ],
)
def test_loopback_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_address(value, allow_remote=False) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0.0.0.0:6667", "not a loopback address"),
        ("192.0.2.1:6667", "--irc-allow-remote"),
        ("example.org:6667", "not a loopback address"),
        ("127.0.0.1", "HOST:PORT"),
        ("127.0.0.1:70000", "HOST:PORT"),
        (":6667", "host is missing"),
    ],
)
def test_bad_addresses_say_why(value: str, reason: str) -> None:
    with pytest.raises(IrcOptionError, match=reason):
        parse_address(value, allow_remote=False)


def test_remote_addresses_need_the_flag() -> None:
    assert parse_address("0.0.0.0:6667", allow_remote=True) == ("0.0.0.0", 6667)


def test_a_password_is_made_when_no_file_is_given() -> None:
    first, second = load_password(None), load_password(None)
    assert first != second and len(first) == 24


def test_the_password_file_s_first_line(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes(b"  long-enough-password  \nsecond line\n")
    assert load_password(str(path)) == "long-enough-password"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"short\n", "8-256 characters"),
        (b"x" * 2000, "over 1024 bytes"),
        (b"\xff\xfe-not-utf-8", "not UTF-8"),
        (b"with a space inside\n", "spaces or controls"),
        (b"bell\x07-in-password\n", "spaces or controls"),
        (b"", "8-256 characters"),
    ],
)
def test_bad_password_files_say_why(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "pw"
    path.write_bytes(data)
    with pytest.raises(IrcOptionError, match=reason):
        load_password(str(path))
