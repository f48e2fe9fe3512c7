"""Causal delivery: hold a message back until everything its clock depends on is delivered.

A message from origin ``o`` with clock ``V`` is deliverable when ``delivered[o] == V[o] - 1``
and ``delivered[k] >= V[k]`` for every other ``k``. A held message waits under its first
missing dependency ``(k, c)`` and is looked at again exactly when ``delivered[k]`` reaches
``c``, so a backlog is released in time linear in its dependencies.
"""

from __future__ import annotations

from collections import defaultdict

from chatd.wire import Message


class CausalBuffer:
    def __init__(self) -> None:
        self.delivered: dict[str, int] = {}
        self._seen: set[str] = set()
        self._held: dict[str, Message] = {}
        self._waiting: defaultdict[tuple[str, int], list[Message]] = defaultdict(list)

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._seen

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
        self._seen.add(message.id)
        self._held[message.id] = message
        out: list[Message] = []
        queue = [message]
        while queue:
            current = queue.pop()
            origin, clock = current.node_id, current.vector_clock
            seq = clock.get(origin, 0)
            if seq <= self.delivered.get(origin, 0):
                del self._held[current.id]  # a conflicting copy of a delivered sequence number
                continue
            missing = self._first_missing(current)
            if missing is not None:
                self._waiting[missing].append(current)
                continue
            self.delivered[origin] = seq
            del self._held[current.id]
            out.append(current)
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
