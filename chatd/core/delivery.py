"""Causal delivery: hold a message back until everything its clock depends on is delivered.

A message from origin ``o`` with clock ``V`` is deliverable when ``delivered[o] == V[o] - 1``
and ``delivered[k] >= V[k]`` for every other ``k``. A held message waits under its first
missing dependency ``(k, c)`` and is looked at again exactly when ``delivered[k]`` reaches
``c``, so a backlog is released in time linear in its dependencies.

Two validly signed versions of one ``(origin, sequence number)`` (an equivocation) share an
id. The buffer then holds the winner (``winner``: the lower signature, the same choice at
every node) and the slot is delivered as soon as either version's dependencies are, so a
version with dependencies that never come cannot keep the slot back at some nodes only.
The version whose dependencies released a slot delivered as another is remembered
(``released_by``): sent along in repairs, it releases the slot at a node that holds only
the winner.
"""

from __future__ import annotations

from collections import defaultdict

from chat.wire import Message


def winner(a: Message, b: Message) -> Message:
    """Of two versions of one message, the one every node keeps."""
    return a if a.signature <= b.signature else b


class CausalBuffer:
    def __init__(self) -> None:
        self.delivered: dict[str, int] = {}
        self._seen: dict[str, str] = {}  # id → signature of the version kept
        self._held: dict[str, Message] = {}
        self._waiting: defaultdict[tuple[str, int], list[Message]] = defaultdict(list)
        # id -> the version whose dependencies released a slot delivered as another version.
        self.released_by: dict[str, Message] = {}

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._seen

    def signature_of(self, message_id: str) -> str | None:
        """The signature of the version kept under ``message_id``, if any was seen."""
        return self._seen.get(message_id)

    def held_version(self, message_id: str) -> Message | None:
        return self._held.get(message_id)

    def keep(self, message: Message, replacing: Message) -> None:
        """``message`` now wins the delivered slot of ``replacing``, whose dependencies (or
        those of the version remembered already) released it here."""
        self._seen[message.id] = message.signature
        self.released_by.setdefault(message.id, replacing)

    @property
    def held(self) -> int:
        return len(self._held)

    def is_stale(self, message: Message) -> bool:
        """An unseen id claiming a sequence number its origin already used: a conflict."""
        return message.vector_clock.get(message.node_id, 0) <= self.delivered.get(
            message.node_id, 0
        )

    def offer(self, message: Message) -> list[Message]:
        """Take ``message``; return every message now deliverable, in a causal order.

        A duplicate id returns ``[]``; so does a message that must wait.
        """
        if message.id in self._seen:
            return []
        self._seen[message.id] = message.signature
        self._held[message.id] = message
        return self._release(message)

    def offer_rival(self, message: Message) -> list[Message]:
        """Take another version of a held message: the winner is kept, and the slot is
        delivered once either version could be."""
        held = self._held.get(message.id)
        if held is None or held.signature == message.signature:
            return []
        kept = winner(held, message)
        self._held[message.id] = kept
        self._seen[message.id] = kept.signature
        return self._release(message)

    def _release(self, message: Message) -> list[Message]:
        out: list[Message] = []
        queue = [message]
        while queue:
            current = queue.pop()
            origin, clock = current.node_id, current.vector_clock
            seq = clock.get(origin, 0)
            if seq <= self.delivered.get(origin, 0):
                # This slot went out already (through a rival version): nothing to do.
                self._held.pop(current.id, None)
                continue
            missing = self._first_missing(current)
            if missing is not None:
                self._waiting[missing].append(current)
                continue
            self.delivered[origin] = seq
            kept = self._held.pop(current.id, current)
            if kept.signature != current.signature:
                self.released_by[current.id] = current
            out.append(kept)
            queue.extend(self._waiting.pop((origin, seq), ()))
        return out

    def _first_missing(self, message: Message) -> tuple[str, int] | None:
        origin, clock = message.node_id, message.vector_clock
        need = clock.get(origin, 0) - 1
        if self.delivered.get(origin, 0) < need:
            return (origin, need)
        for node, count in clock.items():
            if node != origin and self.delivered.get(node, 0) < count:
                return (node, count)
        return None
