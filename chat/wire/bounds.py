"""The documented range of every number, string and collection on the wire.

Each frame field carries one of these validators, so a value out of range is refused at
decode (``DecodeError``) and the node can never build one either (constructing it raises
``ValueError``: a bug of ours, not bad input). The README's "Limits" table lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sized
from typing import Any

from chat import names

# Integers stay exact in every JSON implementation (IEEE doubles) below 2**53.
MAX_SAFE_INT = 2**53 - 1
# Terms and sequence numbers count up from 0; an election adds 1, a message adds 1.
MAX_TERM = MAX_SAFE_INT
MAX_SEQUENCE = MAX_SAFE_INT
# Priorities are small signed integers chosen by the operator.
MIN_PRIORITY, MAX_PRIORITY = -(2**31), 2**31 - 1
# A node-id is 32 hex digits; message ids are UUIDs (36). Ids longer than this are junk.
MAX_ID_CHARS = 64
# Names: chat.names (1-32 characters, no controls, bidi or other format characters).
MAX_NAME_CHARS = names.MAX_NAME_CHARS
MAX_ADDRESS_CHARS = 256
MAX_TIMESTAMP_CHARS = 40
# base64 of a 32-byte key is 44 characters, of a 64-byte signature 88; a hex HMAC is 64.
MAX_KEY_CHARS = 64
MAX_SIGNATURE_CHARS = 128
MAX_DIGEST_CHARS = 128
# A discussion has at most this many members, and a vector clock at most this many
# entries (members come and go, so a clock may name more origins than there are members).
MAX_MEMBERS = 256
MAX_CLOCK_ENTRIES = 1024
# Characters of a text before the byte check (4096 UTF-8 bytes are at most 4096 chars).
MAX_TEXT_CHARS = 4096

Validator = Callable[[Any, Any, Any], None]


def _fail(attribute: Any, why: str) -> None:
    raise ValueError(f"{attribute.name.replace('_', '-')}: {why}")


def int_range(low: int, high: int) -> Validator:
    def check(_instance: Any, attribute: Any, value: int) -> None:
        if not low <= value <= high:
            _fail(attribute, f"{value} is outside [{low}, {high}]")

    return check


def max_len(limit: int) -> Validator:
    def check(_instance: Any, attribute: Any, value: Sized) -> None:
        if len(value) > limit:
            _fail(attribute, f"length {len(value)} is over {limit}")

    return check


def by_node_id(limit: int, value_problem: Callable[[Any], str | None]) -> Validator:
    """A mapping node-id → value: at most ``limit`` entries, node-ids of bounded length,
    and each value passing ``value_problem`` (what is wrong with it, or None)."""

    def check(_instance: Any, attribute: Any, value: Mapping[str, Any]) -> None:
        if len(value) > limit:
            _fail(attribute, f"{len(value)} entries, over {limit}")
        for node, entry in value.items():
            if len(node) > MAX_ID_CHARS:
                _fail(attribute, "an entry's node-id is too long")
            if (problem := value_problem(entry)) is not None:
                _fail(attribute, problem)

    return check


# Every message carries its sender's name: a few names, checked again and again.
_name_problem = functools.lru_cache(maxsize=1024)(names.name_problem)


def valid_name(_instance: Any, attribute: Any, value: str) -> None:
    # Only names that may be valid are cached: a huge one is refused by its length.
    check = _name_problem if len(value) <= MAX_NAME_CHARS else names.name_problem
    if (problem := check(value)) is not None:
        _fail(attribute, problem)


def counts_by_node_id(_instance: Any, attribute: Any, value: Mapping[str, int]) -> None:
    """``by_node_id(MAX_CLOCK_ENTRIES, _count_problem)`` in one loop: a vector clock is on
    every message and heartbeat."""
    if len(value) > MAX_CLOCK_ENTRIES:
        _fail(attribute, f"{len(value)} entries, over {MAX_CLOCK_ENTRIES}")
    for node, count in value.items():
        if len(node) > MAX_ID_CHARS or not 0 <= count <= MAX_SEQUENCE:
            return by_node_id(MAX_CLOCK_ENTRIES, _count_problem)(_instance, attribute, value)
    return None


def _departure_problem(reason: str) -> str | None:
    return None if reason in DEPARTURES else f"reason {reason[:20]!r} is not one of {DEPARTURES}"


def _count_problem(count: int) -> str | None:
    return None if 0 <= count <= MAX_SEQUENCE else f"count {count} is outside [0, {MAX_SEQUENCE}]"


def _digest_problem(digest: str) -> str | None:
    return "an entry is too long" if len(digest) > MAX_DIGEST_CHARS else None


def _neighbours_problem(peers: list[str]) -> str | None:
    if len(peers) > MAX_MEMBERS:
        return "an entry is too long"
    if any(len(peer) > MAX_ID_CHARS for peer in peers):
        return "a neighbour's node-id is too long"
    return None


# A vector clock: counts in range. Anti-entropy chain hashes: digests of bounded length.
# The overlay: a neighbour list per member.
CLOCK = counts_by_node_id
HASHES = by_node_id(MAX_CLOCK_ENTRIES, _digest_problem)
OVERLAY = by_node_id(MAX_MEMBERS, _neighbours_problem)
# Why members left (``nodes.departed``): at most one entry per possible member.
DEPARTURES = ("left", "timed-out")
DEPARTED = by_node_id(MAX_MEMBERS, _departure_problem)

TERM = int_range(0, MAX_TERM)
COUNT = int_range(0, MAX_SAFE_INT)
PRIORITY = int_range(MIN_PRIORITY, MAX_PRIORITY)
ID = max_len(MAX_ID_CHARS)
NAME = valid_name
ADDRESS = max_len(MAX_ADDRESS_CHARS)
TIMESTAMP = max_len(MAX_TIMESTAMP_CHARS)
KEY = max_len(MAX_KEY_CHARS)
SIGNATURE = max_len(MAX_SIGNATURE_CHARS)
DIGEST = max_len(MAX_DIGEST_CHARS)
TEXT = max_len(MAX_TEXT_CHARS)
