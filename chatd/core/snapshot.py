"""What ``status`` and ``who`` show of a node: one frozen view the core hands the shell."""

from __future__ import annotations

from attrs import frozen

from chat.wire import Hello, MemberRecord
from chatd.core.effects import Role


@frozen
class Snapshot:
    node_id: str
    name: str  # this node's current name
    address: str
    public_address: str
    role: Role
    coordinator: str | None
    term: int
    ready: bool
    has_joined: bool
    members: tuple[MemberRecord, ...]  # sorted by node-id
    neighbours: tuple[str, ...]
    peers: dict[str, Hello]  # linked and authenticated
    last_heard: dict[str, float]
    vector_clock: dict[str, int]
    messages: int  # history length
    counters: dict[str, int]
    reachable: bool = True  # whether peers can dial this node (the director dialed it back)
    # None while not in a discussion; else whether any member can be dialed (a discussion
    # of dial-out-only members only cannot be joined from outside their homes).
    reachable_members: int | None = None
