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
class RegisterCoordinator:
    record: CoordinatorRecord


@frozen
class UnregisterCoordinator:
    term: int


Effect = Send | Deliver | Announce | Disconnect | RegisterCoordinator | UnregisterCoordinator
