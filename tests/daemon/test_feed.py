"""The shell's one error rule (``Runtime.feed``), as h11 splits errors: a local
request the core refuses goes back to its caller; anything else the core raises is a bug
of ours, logged with its traceback, and costs that one event, never the node."""

from __future__ import annotations

import random
import sys
from typing import Any, cast

import pytest
from structlog.typing import FilteringBoundLogger

from chatd.config import LAN
from chatd.core.effects import Effect, Log, NodeError, Role
from chatd.core.node import Node
from chatd.registration import DirectorApi
from chatd.runtime import CoreFailed, Runtime
from chatd.transport import Transport


class Recording:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any], BaseException | None]] = []

    def bind(self, **fields: Any) -> Recording:
        return self

    def info(self, event: str, **fields: Any) -> None:
        self.records.append(("info", event, fields, None))

    def warning(self, event: str, **fields: Any) -> None:
        self.records.append(("warning", event, fields, None))

    def exception(self, event: str, **fields: Any) -> None:
        self.records.append(("exception", event, fields, sys.exc_info()[1]))


class StubNode:
    term = 3
    role = Role.MEMBER
    ready = True
    has_joined = True

    def send_text(self, text: str, timestamp: str, now: float) -> Any:
        raise ValueError("a bug in the core")


def runtime_with(log: Recording) -> Runtime:
    return Runtime(
        cast(Node, StubNode()),
        cast(Transport, object()),
        cast(DirectorApi, object()),
        (),
        None,
        LAN,
        random.Random(1),
        cast(FilteringBoundLogger, log),
    )


def test_a_refused_request_goes_back_to_its_caller() -> None:
    runtime = runtime_with(Recording())

    def refuse() -> list[Effect]:
        raise NodeError("too-large", "text is 5000 bytes")

    with pytest.raises(NodeError, match="5000 bytes"):
        runtime.feed("send", refuse)


def test_a_bug_costs_one_event_and_is_logged_with_its_traceback() -> None:
    log = Recording()
    runtime = runtime_with(log)

    def bug() -> list[Effect]:
        raise KeyError("oops")

    assert runtime.feed("frame", bug, peer="bob") is False
    ((level, event, fields, exc),) = log.records
    assert (level, event, fields) == (
        "exception",
        "core.failed",
        {"core_event": "frame", "peer": "bob"},
    )
    assert isinstance(exc, KeyError)
    # The next event is carried out as usual: its log line is written.
    assert runtime.feed("tick", lambda: [Log("info", "node.ticked", {"term": 3})]) is True
    assert log.records[-1][:3] == ("info", "node.ticked", {"term": 3})


def test_a_bug_in_a_local_request_is_core_failed_for_the_control_socket() -> None:
    log = Recording()
    runtime = runtime_with(log)
    with pytest.raises(CoreFailed):
        runtime.send_text("hello")
    assert [r[1] for r in log.records] == ["core.failed"]
    assert "hello" not in repr(log.records[0][2])  # never the text
