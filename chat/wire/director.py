"""Bodies of the director's HTTP endpoints."""

from __future__ import annotations

from typing import Literal

from attrs import field, frozen

from chat.wire import bounds as b


@frozen
class CoordinatorRecord:
    """``POST /register_coordinator`` body, and what ``GET /`` returns as JSON."""

    node_id: str = field(validator=b.ID)
    address: str = field(validator=b.ADDRESS)
    public_address: str = field(validator=b.ADDRESS)
    term: int = field(validator=b.TERM)


@frozen
class NodeRegistration:
    """``POST /register_node`` body: a newcomer asks where to go."""

    node_id: str = field(validator=b.ID)
    address: str = field(validator=b.ADDRESS)
    public_address: str = field(validator=b.ADDRESS)


@frozen
class JoinAdvice:
    """``/register_node`` answer: join ``coordinator``, start the discussion yourself, or
    ask again shortly (the director has just started and may not know the coordinator)."""

    action: Literal["join", "start", "wait"]
    coordinator: CoordinatorRecord | None = None
    term: int = field(default=0, validator=b.TERM)


@frozen
class Unregistration:
    """``POST /unregister_coordinator``: the last node leaves; forget the coordinator."""

    node_id: str = field(validator=b.ID)
    term: int = field(validator=b.TERM)
