"""Presence events, derived (pure) from the changes of one node's view of the membership.

The coordinator's versioned ``nodes`` membership is the single source: each node compares
the membership it holds now with the one it last reported and says what changed, in this
order within one change: departures (``left``, or ``timed-out`` when the coordinator took
the member for dead, as its ``nodes`` says), arrivals (``joined``, or ``rejoined`` for a
node-id this node has seen in the discussion before), ``renamed``, then ``coordinator``
(said once the new coordinator is a listed member, so with its name). The first
membership a node holds (its own join) is the baseline: no events for those already there.

Events are not history: they are delivered to local clients with the messages and
forgotten. ``at`` is stamped by the shell (the core has no wall clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from attrs import define, field, frozen

PresenceEvent = Literal["joined", "left", "timed-out", "rejoined", "coordinator", "renamed"]
EVENTS: tuple[PresenceEvent, ...] = (
    "joined",
    "left",
    "timed-out",
    "rejoined",
    "coordinator",
    "renamed",
)
# Node-ids remembered for ``rejoined``: the oldest are forgotten beyond this.
MAX_REMEMBERED = 4096


@frozen
class Presence:
    """A change in who is here: ``name`` is the member's name now; ``old_name`` only for
    ``renamed``; ``at`` an ISO-8601 UTC timestamp like a message's."""

    event: str
    node_id: str
    name: str
    old_name: str | None = None
    at: str = ""


@define
class Roster:
    """What this node last reported of the membership to its clients."""

    names: dict[str, str] | None = None  # node-id -> name; None before the baseline
    coordinator: str | None = None  # the coordinator last announced
    seen: dict[str, None] = field(factory=dict)  # an ordered set of node-ids ever listed

    def update(
        self,
        members: Mapping[str, str],
        coordinator: str | None,
        departed: Mapping[str, str],
    ) -> list[Presence]:
        """The events that take the last report to ``members`` (node-id -> name) and
        ``coordinator``; ``departed`` says why removed members went (default ``left``)."""
        if self.names is None:
            self.names = dict(members)
            self._remember(members)
            self.coordinator = coordinator if coordinator in members else None
            return []
        events: list[Presence] = []
        before = self.names
        for node_id, name in before.items():
            if node_id not in members:
                reason = departed.get(node_id, "left")
                events.append(
                    Presence("timed-out" if reason == "timed-out" else "left", node_id, name)
                )
        for node_id, name in members.items():
            if node_id not in before:
                events.append(
                    Presence("rejoined" if node_id in self.seen else "joined", node_id, name)
                )
        for node_id, name in members.items():
            old = before.get(node_id)
            if old is not None and old != name:
                events.append(Presence("renamed", node_id, name, old_name=old))
        if coordinator is not None and coordinator in members and coordinator != self.coordinator:
            events.append(Presence("coordinator", coordinator, members[coordinator]))
            self.coordinator = coordinator
        self.names = dict(members)
        self._remember(members)
        return events

    def _remember(self, members: Mapping[str, str]) -> None:
        for node_id in members:
            self.seen.pop(node_id, None)
            self.seen[node_id] = None
        while len(self.seen) > MAX_REMEMBERED:
            del self.seen[next(iter(self.seen))]
