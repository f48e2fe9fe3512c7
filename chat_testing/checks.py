"""What a message shown by a real node must look like: its fields as the design defines
them, the canonical order, and the causal order of a sequence of messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from chat_testing.control import Message

# As the design defines a message, plus the sender's display name (issue 11).
MESSAGE_FIELDS = frozenset(
    {"id", "node-id", "name", "timestamp", "message", "vector-clock", "display"}
)


def sequence_number(message: Message) -> int:
    """A message's position among its origin's messages (its own vector-clock entry)."""
    return int(message["vector-clock"][message["node-id"]])


def causal_violations(messages: Sequence[Message]) -> list[str]:
    """Pairs shown in an order that contradicts causality (empty when the order is causal).

    A message depends on every message of origin ``n`` numbered up to its clock entry for
    ``n`` (for its own origin: the earlier ones). Dependencies not in ``messages`` are
    ignored, so a window of a longer stream can be checked.
    """
    position = {(m["node-id"], sequence_number(m)): i for i, m in enumerate(messages)}
    problems: list[str] = []
    for i, message in enumerate(messages):
        for origin, count in message["vector-clock"].items():
            top = count - 1 if origin == message["node-id"] else count
            for seq in range(1, top + 1):
                j = position.get((origin, seq))
                if j is not None and j > i:
                    problems.append(
                        f"{message['id']} (#{i}) shown before its dependency "
                        f"{messages[j]['id']} (#{j})"
                    )
    return problems


def canonical_key(message: Message) -> tuple[int, str, str]:
    """The design's canonical order: sum of the vector clock, then node-id, then id."""
    return (sum(message["vector-clock"].values()), message["node-id"], message["id"])


def check_message_shape(message: Message) -> None:
    """The fields of a message object as the design defines them."""
    assert set(message) == MESSAGE_FIELDS, f"fields {sorted(message)}"
    for name in ("id", "node-id", "name", "timestamp", "message", "display"):
        assert isinstance(message[name], str) and message[name], f"{name}: {message[name]!r}"
    when = datetime.fromisoformat(message["timestamp"])
    assert when.utcoffset() == timedelta(0), f"timestamp not UTC: {message['timestamp']}"
    assert abs(datetime.now(when.tzinfo) - when) < timedelta(minutes=10), message["timestamp"]
    clock = message["vector-clock"]
    assert isinstance(clock, dict) and clock, f"vector-clock: {clock!r}"
    assert all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in clock.items())
    assert clock.get(message["node-id"], 0) >= 1, "the clock does not count its origin"
