"""The watchdog pings and status lines sent to systemd (chat.notify), against a real
datagram socket standing in for ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from chat.notify import (
    feed_watchdog,
    report_status,
    service_tasks,
    start_service_tasks,
    status_line,
    watchdog_interval,
)


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[socket.socket]:
    """A bound datagram socket, named in ``$NOTIFY_SOCKET``; reads never block."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield server


def drain(server: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(server.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "20000000"}, 20.0),
        ({"WATCHDOG_USEC": "1500", "WATCHDOG_PID": "4242"}, 0.0015),
        ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": ""}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, pid=4242) == expected


def test_watchdog_interval_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 4.0


def test_status_line_is_one_line() -> None:
    assert status_line("alice: member, 2 members") == "STATUS=alice: member, 2 members"
    assert status_line("a\nb\r\nWATCHDOG=1") == "STATUS=a b WATCHDOG=1"


async def test_watchdog_pings_at_half_the_interval(
    notify_socket: socket.socket, autojump_clock: trio.testing.MockClock
) -> None:
    receiver = trio.socket.from_stdlib_socket(notify_socket)
    pings: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed_watchdog, 20.0)
        while len(pings) < 4:
            assert await receiver.recv(100) == b"WATCHDOG=1"
            pings.append(trio.current_time())
        nursery.cancel_scope.cancel()
    assert pings == [0.0, 10.0, 20.0, 30.0]


async def test_status_is_sent_when_it_changes_only(
    notify_socket: socket.socket, autojump_clock: trio.testing.MockClock
) -> None:
    texts = iter(["joining, 0 members"] * 3 + ["member, 2 members"] * 3 + ["member,\n3"] * 9)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(report_status, lambda: next(texts), 1.0)
        await trio.sleep(10)
        nursery.cancel_scope.cancel()
    assert drain(notify_socket) == [
        "STATUS=joining, 0 members",
        "STATUS=member, 2 members",
        "STATUS=member, 3",
    ]


async def test_a_status_that_could_not_be_sent_is_sent_later(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """systemd's socket missing for a moment must not leave the last status unsent."""
    path = tmp_path / "notify"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(report_status, lambda: "coordinator, 1 member", 1.0)
        await trio.sleep(2.5)  # three sends failed: nobody listens
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
            server.bind(str(path))
            server.setblocking(False)
            await trio.sleep(2)
            nursery.cancel_scope.cancel()
            assert drain(server) == ["STATUS=coordinator, 1 member"]


async def test_without_systemd_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    async with trio.open_nursery() as nursery:
        start_service_tasks(nursery, lambda: "never asked")
        assert not nursery.child_tasks


@pytest.mark.parametrize("usec", [None, "2000000"])
async def test_tasks_under_systemd(
    notify_socket: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    autojump_clock: trio.testing.MockClock,
    usec: str | None,
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    async with service_tasks(lambda: "member, 2 members"):
        await trio.sleep(2.5)
    # The block has ended: its tasks are gone, and nothing is sent any more.
    sent = drain(notify_socket)
    await trio.sleep(10)
    assert drain(notify_socket) == []
    assert sent.count("STATUS=member, 2 members") == 1
    assert sent.count("WATCHDOG=1") == (0 if usec is None else 3)  # at 0, 1 and 2 s
