"""What the node core returns: the effects the shell carries out, and local errors."""

from __future__ import annotations

import enum

from attrs import frozen

from chat.wire import CoordinatorRecord, Frame, Message
from chatd.core.presence import Presence


class Role(enum.StrEnum):
    JOINING = "joining"
    MEMBER = "member"
    COORDINATOR = "coordinator"
    LEAVING = "leaving"


class NodeError(Exception):
    """A local request the node cannot honour; ``code`` is a control-protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# Effects -----------------------------------------------------------------------------


@frozen
class Send:
    peer: str
    frame: Frame


@frozen
class Deliver:
    message: Message


@frozen
class Announce:
    """Tell local clients of a presence event, in order with deliveries (the shell stamps
    ``at``); never stored."""

    presence: Presence


@frozen
class Disconnect:
    peer: str
    reason: str


@frozen
class Dial:
    """Keep a link to ``peer`` at ``address`` (dial with backoff, reconnect after it closes)
    until ``Undial``: emitted when the core starts wanting it or the address changes."""

    peer: str
    address: str


@frozen
class Undial:
    """Stop dialing ``peer``; a link that is up stays up (only ``Disconnect`` closes one)."""

    peer: str


@frozen
class Log:
    """A log line for the shell to write: ``level`` is debug, info, warning or error;
    ``fields`` never hold message text (the core adds ``term``)."""

    level: str
    event: str
    fields: dict[str, object]


@frozen
class RegisterCoordinator:
    record: CoordinatorRecord


@frozen
class UnregisterCoordinator:
    term: int


Effect = (
    Send
    | Deliver
    | Announce
    | Disconnect
    | Dial
    | Undial
    | RegisterCoordinator
    | UnregisterCoordinator
    | Log
)
