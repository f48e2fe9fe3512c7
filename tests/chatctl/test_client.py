"""chatctl.client's API and its transport errors, against the fake daemon."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from chat.wire import MessageView, OkResponse, StatusRequest
from chatctl import client as client_module
from chatctl.client import (
    ConnectionLost,
    ControlError,
    NoDaemon,
    PermissionDenied,
    ProtocolError,
    RemoteError,
    Timeout,
    connect,
)
from tests.chatctl.fakedaemon import (
    MEMBER_VIEWS,
    MESSAGES,
    STATUS,
    Answer,
    FakeDaemon,
    error_line,
    line,
)


def test_typed_calls_share_one_connection(daemon: FakeDaemon) -> None:
    with connect(daemon.path) as c:
        assert c.status() == STATUS
        assert c.who() == MEMBER_VIEWS
        assert c.history() == MESSAGES
        assert c.send("yo").message == "yo"
        assert c.request(StatusRequest())["ok"] is True
    assert [r["op"] for r in daemon.requests] == ["status", "who", "history", "send", "status"]


def test_tail_uses_up_the_connection(daemon: FakeDaemon) -> None:
    with connect(daemon.path) as c:
        assert list(c.tail(last=1)) == MESSAGES[-1:]
        with pytest.raises(ControlError, match="closed"):
            c.status()


def test_follow_waits_past_the_request_timeout(daemon: FakeDaemon) -> None:
    later = MessageView("m7", "n", "x", "2024-01-01T00:00:00Z", "late", {})
    daemon.replies["tail"] = lambda _: Answer(
        [line(OkResponse())], later=[line(later)], delay=0.3, hang=True
    )
    with connect(daemon.path, timeout=0.05) as c:
        stream = c.tail(last=0, follow=True)
        assert next(stream) == later
        stream.close()


def test_tail_without_follow_times_out_between_lines(daemon: FakeDaemon) -> None:
    daemon.replies["tail"] = lambda _: Answer([line(OkResponse())], hang=True)
    with connect(daemon.path, timeout=0.1) as c, pytest.raises(Timeout):
        list(c.tail(last=5))


def test_remote_error_carries_code_and_message(daemon: FakeDaemon) -> None:
    daemon.replies["send"] = lambda _: Answer([error_line("not-ready", "not joined yet")])
    with connect(daemon.path) as c, pytest.raises(RemoteError) as info:
        c.send("x")
    assert (info.value.code, info.value.message) == ("not-ready", "not joined yet")


def test_overlong_answer_line(daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_LINE_BYTES", 1000)
    daemon.replies["status"] = lambda _: Answer([b"x" * 100_000], hang=True)
    with connect(daemon.path) as c, pytest.raises(ProtocolError, match="over 1000 bytes"):
        c.status()


def test_closed_mid_tail_stream(daemon: FakeDaemon) -> None:
    daemon.replies["tail"] = lambda _: Answer([line(OkResponse()), b'{"id": '], close=True)
    with connect(daemon.path) as c, pytest.raises(ConnectionLost, match="mid-answer"):
        list(c.tail())


def test_missing_socket(sockdir: Path) -> None:
    with pytest.raises(NoDaemon) as info:
        connect(sockdir / "nope.sock")
    assert str(info.value) == f"no chatd at {sockdir / 'nope.sock'} (is it running?)"


def test_permission_denied_is_reported(sockdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Refusing(socket.socket):
        def connect(self, address: object) -> None:
            raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("chatctl.client.socket.socket", Refusing)
    with pytest.raises(PermissionDenied, match=r"^permission denied on .*/x\.sock"):
        connect(sockdir / "x.sock")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_permission_denied_for_real(daemon: FakeDaemon) -> None:
    daemon.path.chmod(0)
    with pytest.raises(PermissionDenied):
        connect(daemon.path)
