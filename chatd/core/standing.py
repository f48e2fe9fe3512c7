"""Where this node stands in the discussion: role, term, coordinator.

Written by ``chatd.core.election`` only (its transition table says how the role may
change); the other parts hold a reference to read it.
"""

from __future__ import annotations

from attrs import define

from chatd.core.effects import Role


@define
class Standing:
    role: Role = Role.JOINING
    term: int = 0
    coordinator: str | None = None
    coordinator_address: str | None = None  # what a claim or the director said
    has_joined: bool = False  # once in a discussion, a node holds its history for good

    @property
    def ready(self) -> bool:
        return self.role in (Role.MEMBER, Role.COORDINATOR)
