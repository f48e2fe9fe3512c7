"""The control server in-process, over a real Unix socket: a bug in an op or a half-sent
request line ends one connection, never the server."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import trio
import trio.testing
from structlog.typing import FilteringBoundLogger

from chat.wire import Request
from chatd.config import LAN
from chatd.control.ops import Answer
from chatd.control.server import ControlServer
from chatd.core.effects import Role
from chatd.lines import LineReader, LineTimeout
from chatd.log_limit import LogLimiter
from chatd.runtime import CoreFailed, Runtime


class RecordingLog:
    """Stands in for the structlog logger: keeps (level, event, fields, exception)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any], BaseException | None]] = []

    def _add(self, level: str, event: str, fields: dict[str, Any]) -> None:
        self.records.append((level, event, fields, None))

    def debug(self, event: str, **fields: Any) -> None:
        self._add("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._add("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._add("warning", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self.records.append(("exception", event, fields, sys.exc_info()[1]))

    def events(self, level: str) -> list[str]:
        return [event for lvl, event, _, _ in self.records if lvl == level]


class BrokenRuntime:
    """A runtime whose node cannot be read: ``status`` and ``who`` fail with a bug."""

    config = LAN

    @property
    def node(self) -> Any:
        raise RuntimeError("a bug in the node")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[ControlServer, Path, RecordingLog]]:
    log = RecordingLog()
    path = tmp_path / "control.sock"
    control = ControlServer(cast(Runtime, BrokenRuntime()), path, cast(FilteringBoundLogger, log))
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve)
        yield control, path, log
        nursery.cancel_scope.cancel()


async def ask(path: Path, *lines: bytes) -> list[dict[str, Any]]:
    """Send ``lines``; every answer until the server closes the connection."""
    with trio.fail_after(10):
        async with await trio.open_unix_socket(str(path)) as stream:
            await stream.send_all(b"".join(lines))
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
    return [json.loads(line) for line in data.splitlines()]


async def test_a_bug_in_an_op_is_answered_internal_and_logged(
    server: tuple[ControlServer, Path, RecordingLog],
) -> None:
    _, path, log = server
    # The connection is closed after the failure: the who after it is not answered.
    answers = await ask(path, b'{"op": "status"}\n{"op": "who"}\n')
    assert len(answers) == 1
    assert answers[0]["ok"] is False and answers[0]["error"]["code"] == "internal"
    ((level, _event, fields, exc),) = [r for r in log.records if r[1] == "control.failed"]
    assert (level, fields) == ("exception", {"op": "status"})
    assert isinstance(exc, RuntimeError)
    # The server goes on: the next connection is served (and fails the same way).
    answers = await ask(path, b'{"op": "who"}\n')
    assert answers[0]["error"]["code"] == "internal"
    # Bad input is still answered as such, and the connection goes on after it.
    answers = await ask(path, b'{"op": "dance"}\n{"op": "status"}\n')
    assert [a["error"]["code"] for a in answers] == ["bad-request", "internal"]
    assert "control.bad_request" in log.events("warning")


async def test_an_exception_group_from_an_op_is_answered_internal(
    server: tuple[ControlServer, Path, RecordingLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    control, path, log = server

    async def fail_twice(request: Request, stream: trio.SocketStream) -> Answer:
        async def fail() -> None:
            raise ValueError("inside a nursery")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fail)
            nursery.start_soon(fail)
        raise AssertionError("the nursery raises")

    monkeypatch.setattr(control.ops, "answer", fail_twice)
    answers = await ask(path, b'{"op": "status"}\n')
    assert answers[0]["error"]["code"] == "internal"
    exc = next(r[3] for r in log.records if r[1] == "control.failed")
    assert isinstance(exc, ExceptionGroup)
    assert exc.subgroup(ValueError) is not None


class FailingCore:
    """A runtime whose core fails (a bug) on every send: the runtime logged it already."""

    config = LAN

    class node:
        role = Role.MEMBER

    def send_text(self, text: str) -> None:
        raise CoreFailed("send")


async def test_a_core_failure_is_answered_internal_and_logged_once(tmp_path: Path) -> None:
    log = RecordingLog()
    path = tmp_path / "control.sock"
    control = ControlServer(cast(Runtime, FailingCore()), path, cast(FilteringBoundLogger, log))
    async with trio.open_nursery() as nursery:
        await nursery.start(control.serve)
        answers = await ask(path, b'{"op": "send", "text": "hello"}\n')
        nursery.cancel_scope.cancel()
    assert answers[0]["error"]["code"] == "internal"
    assert "control.failed" not in log.events("exception")  # core.failed was the runtime's


async def test_a_client_hanging_up_is_not_an_error(
    server: tuple[ControlServer, Path, RecordingLog],
) -> None:
    _, path, log = server
    with trio.fail_after(10):
        stream = await trio.open_unix_socket(str(path))
        await stream.send_all(b'{"op": "status"')
        await stream.aclose()
    answers = await ask(path, b'{"op": "who"}\n')  # served after it
    assert answers[0]["error"]["code"] == "internal"
    assert log.events("exception") == ["control.failed"]  # only the who's


# LineReader -----------------------------------------------------------------------------------


async def test_a_started_line_must_finish_in_time(autojump_clock: trio.abc.Clock) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive, 1024, timeout=10)
    await send.send_all(b'{"op": "status"}\n{"op"')
    assert await reader.next_line() == b'{"op": "status"}'
    start = trio.current_time()
    with pytest.raises(LineTimeout, match="10 s"):
        await reader.next_line()
    assert trio.current_time() - start == pytest.approx(10)


async def test_a_line_finished_in_time_is_read(autojump_clock: trio.abc.Clock) -> None:
    send, receive = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive, 1024, timeout=10)

    async def slowly() -> None:
        for part in (b'{"op"', b': "st', b'atus"}\n'):
            await send.send_all(part)
            await trio.sleep(4)  # 8 s from the first byte to the newline

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slowly)
        assert await reader.next_line() == b'{"op": "status"}'


async def test_an_idle_connection_has_no_deadline(autojump_clock: trio.abc.Clock) -> None:
    _send, receive = trio.testing.memory_stream_one_way_pair()
    reader = LineReader(receive, 1024, timeout=10)
    with trio.move_on_after(1000) as scope:
        await reader.next_line()
    assert scope.cancelled_caught


# LogLimiter -----------------------------------------------------------------------------------


async def test_log_limiter_keeps_a_burst_then_a_rate(autojump_clock: trio.abc.Clock) -> None:
    log = RecordingLog()
    limiter = LogLimiter(cast(FilteringBoundLogger, log), burst=3, rate=1)
    for _ in range(10):
        limiter.warning("control.busy", clients=1)
    limiter.warning("control.timeout")  # counted apart
    assert log.events("warning") == ["control.busy"] * 3 + ["control.timeout"]
    await trio.sleep(1)
    limiter.warning("control.busy", clients=1)
    assert log.records[-1][2] == {"clients": 1, "left-out": 7}
