"""``chatctl chat``'s asyncio side of the control socket, and the command's own checks,
against the fake daemon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chat.wire import OkResponse, PresenceView, TaggedMessage, TaggedPresence, TailEnd
from chatctl.__main__ import main
from chatctl.chat.connection import Control, Event, NodeLeft, Opened
from chatctl.client import ConnectionLost, NoDaemon, ProtocolError, RemoteError
from tests.chatctl.fakedaemon import CAROL, MESSAGES, Answer, FakeDaemon, error_line, line

JOINED = PresenceView("joined", CAROL, "carol", "carol", None, "2026-03-01T07:08:09+00:00")


async def collect(events: AsyncIterator[Event], into: list[Event]) -> None:
    async for event in events:
        into.append(event)


def events_of(daemon: FakeDaemon, last: int = 5) -> tuple[list[Event], BaseException | None]:
    got: list[Event] = []
    try:
        asyncio.run(collect(Control(daemon.path, 5).events(last), got))
    except Exception as exc:
        return got, exc
    return got, None


def test_events_stream_in_order_until_the_node_left(daemon: FakeDaemon) -> None:
    daemon.replies["tail"] = lambda _: Answer(
        [
            line(OkResponse()),
            line(TaggedMessage(message=MESSAGES[0])),
            line(TaggedPresence(presence=JOINED)),
            line(TailEnd()),
        ],
        close=True,
    )
    got, error = events_of(daemon)
    assert error is None
    assert got == [Opened(), MESSAGES[0], JOINED, NodeLeft()]
    assert daemon.requests == [{"op": "tail", "follow": True, "last": 5, "events": True}]


def test_events_stream_cut_off_is_a_lost_connection(daemon: FakeDaemon) -> None:
    daemon.replies["tail"] = lambda _: Answer(
        [line(OkResponse()), line(TaggedMessage(message=MESSAGES[0]))], close=True
    )
    got, error = events_of(daemon)
    assert got == [Opened(), MESSAGES[0]]
    assert isinstance(error, ConnectionLost)


def test_events_refused(daemon: FakeDaemon) -> None:
    daemon.replies["tail"] = lambda _: Answer([error_line("busy", "too many")], close=True)
    got, error = events_of(daemon)
    assert got == [] and isinstance(error, RemoteError) and error.code == "busy"


def test_requests_and_their_failures(daemon: FakeDaemon) -> None:
    control = Control(daemon.path, 5)
    sent = asyncio.run(control.send("hi"))
    assert sent.message == "hi"
    daemon.replies["nick"] = lambda req: Answer([line({"ok": True, "name": req["name"]})])
    assert asyncio.run(control.nick("caz")) == "caz"
    daemon.replies["send"] = lambda _: Answer([error_line("not-ready", "joining")])
    with pytest.raises(RemoteError) as refused:
        asyncio.run(control.send("hi"))
    assert refused.value.code == "not-ready"
    daemon.replies["send"] = lambda _: Answer([b'{"ok": "yes"}\n'])
    with pytest.raises(ProtocolError):
        asyncio.run(control.send("hi"))
    daemon.replies["send"] = lambda _: Answer([], close=True)
    with pytest.raises(ConnectionLost):
        asyncio.run(control.send("hi"))
    assert [r["op"] for r in daemon.requests] == ["send", "nick", "send", "send", "send"]
    with pytest.raises(NoDaemon):
        asyncio.run(Control(daemon.path.with_name("nobody.sock"), 5).status())


def test_chat_needs_a_terminal(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> None:
    # Under pytest stdin is not a terminal.
    assert main(["--socket", str(daemon.path), "chat"]) == 2
    assert "chat needs a terminal" in capsys.readouterr().err


def test_chat_without_a_node_fails_at_once(sockdir: Path) -> None:
    assert main(["--socket", str(sockdir / "nobody.sock"), "chat"]) == 69
