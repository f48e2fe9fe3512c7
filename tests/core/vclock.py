"""The textbook vector clock, as plain mappings node-id → count (absent = 0): the reference
the core's causal buffer, history and anti-entropy are checked against. The node itself
needs only its delivered counts plus one for its own entry (chatd.core.node.send_text)."""

from __future__ import annotations

import enum
from collections.abc import Mapping

VectorClock = Mapping[str, int]


class Order(enum.Enum):
    BEFORE = "before"
    AFTER = "after"
    CONCURRENT = "concurrent"
    EQUAL = "equal"


def tick(clock: VectorClock, node: str) -> dict[str, int]:
    """A copy of ``clock`` with ``node``'s entry advanced by one."""
    out = dict(clock)
    out[node] = out.get(node, 0) + 1
    return out


def merge(a: VectorClock, b: VectorClock) -> dict[str, int]:
    """The pointwise maximum."""
    out = dict(a)
    for node, count in b.items():
        if count > out.get(node, 0):
            out[node] = count
    return out


def covers(a: VectorClock, b: VectorClock) -> bool:
    """Whether ``a`` ≥ ``b`` pointwise (``a`` has seen everything ``b`` has)."""
    return all(a.get(node, 0) >= count for node, count in b.items())


def compare(a: VectorClock, b: VectorClock) -> Order:
    a_ge = covers(a, b)
    b_ge = covers(b, a)
    if a_ge and b_ge:
        return Order.EQUAL
    if a_ge:
        return Order.AFTER
    if b_ge:
        return Order.BEFORE
    return Order.CONCURRENT
