"""The control protocol (chatctl ↔ chatd): JSON Lines over a Unix socket.

One request object per line, ``{"op": NAME, ...}``; one answer per request,
``{"ok": true, ...}`` or ``{"ok": false, "error": {"code", "message"}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from attrs import field, frozen

from chat.wire.frames import MemberRecord, Message

# Stable error codes; chatctl maps them to exit codes. ONLY APPEND.
ERROR_CODES: dict[str, int] = {
    "bad-request": 2,  # not JSON, not an object, unknown op, wrong fields
    "too-large": 3,  # a text over MAX_TEXT_BYTES or a line over the request limit
    "not-ready": 4,  # the node has not joined a discussion yet
    "forbidden": 5,  # the caller's uid is not the daemon's
    "leaving": 6,  # the node is leaving
    "internal": 7,  # a bug: logged with a traceback
    "busy": 8,  # too many control clients (or tail followers) at once: try again later
    "rate-limited": 9,  # over the flood limit (Config.flood_rate, flood_burst)
}


@frozen
class SendRequest:
    OP: ClassVar[str] = "send"
    text: str


@frozen
class TailRequest:
    """``events``: every line after ``{"ok": true}`` is tagged (``TaggedMessage`` or
    ``TaggedPresence``), and presence events come in order with the messages."""

    OP: ClassVar[str] = "tail"
    follow: bool = False
    last: int = 10
    events: bool = False


@frozen
class HistoryRequest:
    OP: ClassVar[str] = "history"


@frozen
class StatusRequest:
    OP: ClassVar[str] = "status"


@frozen
class WhoRequest:
    OP: ClassVar[str] = "who"


@frozen
class LeaveRequest:
    OP: ClassVar[str] = "leave"


@frozen
class NickRequest:
    """Rename this node (chat.names says which names are valid)."""

    OP: ClassVar[str] = "nick"
    name: str


Request = (
    SendRequest
    | TailRequest
    | HistoryRequest
    | StatusRequest
    | WhoRequest
    | LeaveRequest
    | NickRequest
)

REQUEST_TYPES: dict[str, type[Request]] = {
    cls.OP: cls
    for cls in (
        SendRequest,
        TailRequest,
        HistoryRequest,
        StatusRequest,
        WhoRequest,
        LeaveRequest,
        NickRequest,
    )
}


@frozen
class MessageView:
    """A message as users and scripts see it (no signature material). ``display`` is the
    sender's display name when the node handed it out (chat.names: ``name`` or
    ``name#xxxx``); "" from a node that predates it."""

    id: str
    node_id: str
    name: str
    timestamp: str
    message: str
    vector_clock: dict[str, int]
    display: str = ""

    @classmethod
    def of(cls, message: Message, display: str = "") -> MessageView:
        return cls(
            id=message.id,
            node_id=message.node_id,
            name=message.name,
            timestamp=message.timestamp,
            message=message.message,
            vector_clock=message.vector_clock,
            display=display or message.name,
        )


@frozen
class PresenceView:
    """A presence event (chatd.core.presence): ``event`` is one of joined, left,
    timed-out, rejoined, coordinator, renamed; ``name`` the member's name now, ``display``
    how to show it; ``old_name`` for renamed only; ``at`` ISO-8601 UTC."""

    event: str
    node_id: str
    name: str
    display: str
    old_name: str | None
    at: str


@frozen
class TaggedMessage:
    """A line of ``tail`` with ``events``: a message."""

    kind: Literal["message"] = "message"
    message: MessageView = field(kw_only=True)


@frozen
class TaggedPresence:
    """A line of ``tail`` with ``events``: a presence event."""

    kind: Literal["presence"] = "presence"
    presence: PresenceView = field(kw_only=True)


@frozen
class MemberView:
    """A member as ``who`` shows it: its record, its role, and the link to it from here.

    ``link`` is ``self`` (this node), ``up`` or ``down``; ``last-heard`` is in seconds, or
    null when nothing was heard from it yet. ``display`` is the name to show
    (chat.names); ``idle`` the seconds since this node delivered a message from it, null
    if none. ``reachable``: whether peers can dial it (``MemberRecord``).
    """

    node_id: str
    name: str
    address: str
    public_address: str
    priority: int
    role: Literal["coordinator", "member"]
    link: Literal["self", "up", "down"]
    last_heard: float | None = None
    display: str = ""
    idle: float | None = None
    reachable: bool = True


@frozen
class PeerView:
    """A connected peer, how long ago it was last heard from, and how its link is protected:
    ``cipher`` is the TLS protocol and cipher suite, None for a plaintext link."""

    node_id: str
    name: str
    last_heard: float
    encrypted: bool = False
    cipher: str | None = None


@frozen
class IrcView:
    """The IRC gateway (``chatd --irc``): where it listens and its password. Shown only to
    those who may use the control socket: the password lets an IRC client talk as this node."""

    address: str
    password: str


@frozen
class Status:
    node_id: str
    name: str
    address: str
    public_address: str
    role: Literal["coordinator", "member", "joining", "leaving"]
    coordinator: str | None
    term: int
    members: list[MemberRecord]
    neighbours: list[str]
    vector_clock: dict[str, int]
    messages: int
    peers: list[PeerView] = field(factory=list)
    director: str = ""
    # A group secret is required of every peer and every link is encrypted.
    secure: bool = True
    counters: dict[str, int] = field(factory=dict)
    irc: IrcView | None = None  # None: no IRC gateway (no --irc)
    # Whether peers can dial this node's public address (the director dialed it back),
    # and the IP address the director saw it come from ("" until a director said).
    reachable: bool = True
    observed_address: str = ""
    # What is wrong with the discussion as this node sees it, in words ("" when nothing):
    # today, that no member can be dialed, so newcomers cannot join.
    warning: str = ""


@frozen
class TailEnd:
    """The last line of a ``tail`` with ``follow`` when the node leaves cleanly
    (``{"end": "node-left"}``): a stream that stops without it was cut off."""

    end: Literal["node-left"] = "node-left"


@frozen
class ErrorBody:
    code: str
    message: str


@frozen
class ErrorResponse:
    error: ErrorBody
    ok: bool = False


@frozen
class OkResponse:
    ok: bool = True


@frozen
class SendResponse:
    message: MessageView
    ok: bool = True


@frozen
class NickResponse:
    name: str
    ok: bool = True


@frozen
class HistoryResponse:
    messages: list[MessageView]
    ok: bool = True


@frozen
class StatusResponse:
    status: Status
    ok: bool = True


@frozen
class WhoResponse:
    members: list[MemberView]
    ok: bool = True


def decode_request(obj: Any) -> Request:
    """Turn a decoded JSON value into a request; raises ``DecodeError`` with a clear reason."""
    from chat.wire.codec import DecodeError, structure

    if not isinstance(obj, dict):
        raise DecodeError("a request must be a JSON object")
    op = obj.get("op")
    if not isinstance(op, str):
        raise DecodeError('a request needs a string "op"')
    cls = REQUEST_TYPES.get(op)
    if cls is None:
        raise DecodeError(f"unknown op {op[:40]!r} (known: {', '.join(sorted(REQUEST_TYPES))})")
    body = {k: v for k, v in obj.items() if k != "op"}
    return structure(body, cls)
