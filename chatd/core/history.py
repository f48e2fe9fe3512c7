"""The discussion replica (its history): delivered messages in canonical order.

Canonical order sorts by (sum of the vector clock, node-id, id). If ``a`` happened before
``b`` then every entry of ``a``'s clock is ≤ ``b``'s and one is smaller, so the sum is
smaller: the order extends causality, and it depends only on the set of messages, so
replicas that hold the same messages list them identically.

Each origin's messages are also indexed by sequence number, so what a peer lacks (a repair)
is found without scanning the whole history.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping

from chat.wire import Message

Key = tuple[int, str, str]


def canonical_key(message: Message) -> Key:
    return (sum(message.vector_clock.values()), message.node_id, message.id)


class History:
    def __init__(self) -> None:
        self._keys: list[Key] = []
        self._messages: list[Message] = []
        self._by_id: dict[str, Message] = {}
        # origin -> its delivered messages and their sequence numbers, in sequence order
        self._by_origin: dict[str, list[Message]] = {}
        self._seqs: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self._messages)

    def __iter__(self) -> Iterator[Message]:
        return iter(self._messages)

    def add(self, message: Message) -> None:
        """Insert a delivered message (cheap when it sorts last, as new messages do)."""
        key = canonical_key(message)
        at = bisect.bisect(self._keys, key)
        self._keys.insert(at, key)
        self._messages.insert(at, message)
        self._by_id[message.id] = message
        origin = message.node_id
        seqs = self._seqs.setdefault(origin, [])
        seq = message.vector_clock[origin]
        at = bisect.bisect(seqs, seq)
        seqs.insert(at, seq)
        self._by_origin.setdefault(origin, []).insert(at, message)

    def get(self, message_id: str) -> Message | None:
        return self._by_id.get(message_id)

    def replace(self, message: Message) -> None:
        """Put ``message`` in place of the delivered version with its id (an equivocation
        resolved): its clock may differ, so it is re-sorted."""
        old = self._by_id[message.id]
        at = bisect.bisect_left(self._keys, canonical_key(old))
        del self._keys[at], self._messages[at]
        origin = old.node_id
        at = bisect.bisect_left(self._seqs[origin], old.vector_clock[origin])
        del self._seqs[origin][at], self._by_origin[origin][at]
        self.add(message)

    def of_origin(self, origin: str) -> list[Message]:
        """``origin``'s delivered messages by sequence number."""
        return list(self._by_origin.get(origin, ()))

    def since(self, clock: Mapping[str, int]) -> list[Message]:
        """Messages ``clock`` does not cover, in canonical (hence causal) order."""
        missing: list[Message] = []
        for origin, seqs in self._seqs.items():
            missing += self._by_origin[origin][bisect.bisect(seqs, clock.get(origin, 0)) :]
        if 4 * len(missing) > len(self._messages):  # most of it: one ordered pass is cheaper
            return [
                m for m in self._messages if m.vector_clock[m.node_id] > clock.get(m.node_id, 0)
            ]
        return sorted(missing, key=canonical_key)

    def last(self, count: int) -> list[Message]:
        return self._messages[-count:] if count > 0 else []
