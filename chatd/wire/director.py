"""Bodies of the director's HTTP endpoints."""

from __future__ import annotations

from typing import Literal

from attrs import frozen


@frozen
class CoordinatorRecord:
    """``POST /register_coordinator`` body, and what ``GET /`` returns as JSON."""

    node_id: str
    address: str
    public_address: str
    term: int


@frozen
class NodeRegistration:
    """``POST /register_node`` body: a newcomer asks where to go."""

    node_id: str
    address: str
    public_address: str


@frozen
class JoinAdvice:
    """``/register_node`` answer: join ``coordinator``, start the discussion yourself, or
    ask again shortly (the director has just started and may not know the coordinator)."""

    action: Literal["join", "start", "wait"]
    coordinator: CoordinatorRecord | None = None
    term: int = 0


@frozen
class Unregistration:
    """``POST /unregister_coordinator``: the last node leaves; forget the coordinator."""

    node_id: str
    term: int
