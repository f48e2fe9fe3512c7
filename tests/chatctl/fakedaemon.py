"""A scripted stand-in for chatd's control socket, for chatctl formatting and error tests.

It speaks the control protocol's framing (JSON Lines over a Unix socket) from a background
thread and answers each op with canned, wire-valid objects; tests replace answers per op.
Real end-to-end behaviour is tested against real chatd elsewhere.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from attrs import define, field

from chat.wire import (
    ErrorBody,
    ErrorResponse,
    HistoryResponse,
    MemberRecord,
    MemberView,
    MessageView,
    OkResponse,
    PeerView,
    SendResponse,
    Status,
    StatusResponse,
    WhoResponse,
    encode,
)

ALICE = "a1" * 32
BOB = "b2" * 32
CAROL = "c3" * 32


def message(n: int, node_id: str = ALICE, name: str = "alice", text: str = "") -> MessageView:
    return MessageView(
        id=f"m{n}",
        node_id=node_id,
        name=name,
        timestamp=f"2024-05-06T07:08:{n % 60:02d}Z",
        message=text or f"hello {n}",
        vector_clock={node_id: n},
    )


MESSAGES = [message(1), message(2, BOB, "bob"), message(3)]
MEMBERS = [
    MemberRecord(ALICE, "alice", "ws://127.0.0.1:9001", "ws://alice.example:9001", 5),
    MemberRecord(BOB, "bob", "ws://127.0.0.1:9002", "ws://bob.example:9002"),
    MemberRecord(CAROL, "carol", "ws://127.0.0.1:9003", "ws://carol.example:9003"),
]
MEMBER_VIEWS = [
    MemberView(
        ALICE,
        "alice",
        "ws://127.0.0.1:9001",
        "ws://alice.example:9001",
        5,
        "coordinator",
        "up",
        0.25,
        "alice",
        12.4,
    ),
    MemberView(
        BOB, "bob", "ws://127.0.0.1:9002", "ws://bob.example:9002", 0, "member", "self", None
    ),
    MemberView(
        CAROL,
        "carol",
        "ws://127.0.0.1:9003",
        "ws://carol.example:9003",
        0,
        "member",
        "down",
        4.0,
        "carol",
        7300.0,
    ),
]
CIPHER = "TLSv1.3 TLS_AES_256_GCM_SHA384"
STATUS = Status(
    node_id=BOB,
    name="bob",
    address="ws://127.0.0.1:9002",
    public_address="ws://bob.example:9002",
    role="member",
    coordinator=ALICE,
    term=4,
    members=MEMBERS,
    neighbours=[ALICE, CAROL],
    vector_clock={ALICE: 2, BOB: 1},
    messages=3,
    peers=[
        PeerView(ALICE, "alice", 0.25, True, CIPHER),
        PeerView(CAROL, "carol", 1.5, True, CIPHER),
    ],
)


def line(obj: Any) -> bytes:
    return encode(obj) + b"\n"


def error_line(code: str, text: str) -> bytes:
    return line(ErrorResponse(ErrorBody(code, text)))


@define
class Answer:
    """What the fake sends for one request: ``lines``, ``later`` after ``delay`` s, then
    optionally hang or close."""

    lines: list[bytes]
    later: list[bytes] = field(factory=list)
    delay: float = 0.0
    close: bool = False
    hang: bool = False  # keep the connection open, silent, until the fake stops


Reply = Callable[[dict[str, Any]], Answer]


def _tail(req: dict[str, Any]) -> Answer:
    last = MESSAGES[-req["last"] :] if req["last"] else []
    return Answer([line(OkResponse()), *map(line, last)], close=not req["follow"], hang=True)


def _send(req: dict[str, Any]) -> Answer:
    return Answer([line(SendResponse(message(9, BOB, "bob", req["text"])))])


def default_replies() -> dict[str, Reply]:
    return {
        "send": _send,
        "tail": _tail,
        "history": lambda _: Answer([line(HistoryResponse(MESSAGES))]),
        "status": lambda _: Answer([line(StatusResponse(STATUS))]),
        "who": lambda _: Answer([line(WhoResponse(MEMBER_VIEWS))]),
        "leave": lambda _: Answer([line(OkResponse())], close=True),
    }


@define
class FakeDaemon:
    path: Path
    replies: dict[str, Reply] = field(factory=default_replies)
    requests: list[dict[str, Any]] = field(factory=list)
    stopped: threading.Event = field(factory=threading.Event)

    def handle(self, handler: socketserver.StreamRequestHandler) -> None:
        for raw in handler.rfile:
            request = json.loads(raw)
            self.requests.append(request)
            answer = self.replies[request["op"]](request)
            for chunk in answer.lines:
                handler.wfile.write(chunk)
            if answer.later and not self.stopped.wait(answer.delay):
                for chunk in answer.later:
                    handler.wfile.write(chunk)
            if answer.close:
                return
            if answer.hang:
                self.stopped.wait(30)
                return


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        with suppress(BrokenPipeError, ConnectionResetError):  # the client went away first
            self.server.fake.handle(self)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, fake: FakeDaemon) -> None:
        self.fake = fake
        super().__init__(str(fake.path), _Handler)


@contextmanager
def serving(fake: FakeDaemon) -> Iterator[FakeDaemon]:
    """Serve ``fake`` from a background thread for the duration of the block."""
    server = _Server(fake)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield fake
    finally:
        fake.stopped.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
