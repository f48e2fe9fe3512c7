"""``chatctl status --check``: the container health check's question, "has this node
joined the discussion?", answered by the exit status."""

from __future__ import annotations

import json
from typing import Literal

import attrs
import pytest

from chat.wire import Status, StatusResponse, unstructure
from chatctl.__main__ import EX_NOT_JOINED, main
from tests.chatctl.fakedaemon import STATUS, Answer, FakeDaemon, line

Capture = pytest.CaptureFixture[str]
Role = Literal["coordinator", "member", "joining", "leaving"]


def answer_status(daemon: FakeDaemon, status: Status) -> None:
    daemon.replies["status"] = lambda _: Answer([line(StatusResponse(status))])


def check(daemon: FakeDaemon, *extra: str) -> int:
    return main(["--socket", str(daemon.path), "status", "--check", *extra])


@pytest.mark.parametrize("role", ["member", "coordinator"])
def test_a_joined_node_passes_with_one_line(
    daemon: FakeDaemon, capsys: Capture, role: Role
) -> None:
    answer_status(daemon, attrs.evolve(STATUS, role=role))
    assert check(daemon) == 0
    assert capsys.readouterr() == (f"{role}, 3 members, coordinator a1a1a1a1a1a1\n", "")


@pytest.mark.parametrize("role", ["joining", "leaving"])
def test_a_node_not_in_the_discussion_fails(
    daemon: FakeDaemon, capsys: Capture, role: Role
) -> None:
    not_joined = attrs.evolve(
        STATUS,
        role=role,
        coordinator=None,
        members=[],
        director="cannot reach http://10.0.0.1:8700: connection refused",
    )
    answer_status(daemon, not_joined)
    assert check(daemon) == EX_NOT_JOINED == 14  # the daemon's own "not-ready" code
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"chatctl: not joined: {role}, 0 members, coordinator none, "
        "director: cannot reach http://10.0.0.1:8700: connection refused\n"
    )


def test_check_with_json_prints_the_status_and_still_decides(
    daemon: FakeDaemon, capsys: Capture
) -> None:
    answer_status(daemon, attrs.evolve(STATUS, role="joining"))
    assert check(daemon, "--json") == EX_NOT_JOINED
    out, _ = capsys.readouterr()
    assert json.loads(out) == unstructure(attrs.evolve(STATUS, role="joining"))


def test_no_daemon_is_not_healthy_either(capsys: Capture) -> None:
    assert main(["--socket", "/nonexistent/control.sock", "status", "--check"]) == 69
    assert capsys.readouterr().err.startswith("chatctl: ")
