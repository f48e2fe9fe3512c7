"""Changing inputs: structure-aware changes to a decoded JSON tree, raw changes to bytes."""

from __future__ import annotations

import random
import re
from typing import Any

import attrs

from chat.wire import (
    FRAME_TYPES,
    MAX_FRAME_BYTES,
)
from chat.wire.control import REQUEST_TYPES
from chat_testing.fuzz.json_values import BYTE_TOKENS, INTS, STRINGS, DupKey, junk

Container = dict[Any, Any] | list[Any]


def _descend(tree: Container, rng: random.Random) -> list[tuple[Container, Any]]:
    """A random path from the root: (container, key) pairs. O(depth), not O(size), so big
    trees stay cheap to mutate; shallow places are picked more often than deep ones."""
    path: list[tuple[Container, Any]] = []
    node: Any = tree
    while isinstance(node, dict | list) and node and (not path or rng.random() < 0.6):
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    return path


def _dict_on(path: list[tuple[Container, Any]], tree: dict[Any, Any]) -> dict[Any, Any]:
    """The deepest object on the path."""
    return next((c for c, _ in reversed(path) if isinstance(c, dict)), tree)


def mutate_tree(tree: dict[Any, Any], tag: str, rng: random.Random) -> None:
    """One structure-aware change to a decoded frame or request, in place."""
    op = rng.randrange(9)
    path = _descend(tree, rng)
    parent: Any = path[-1][0] if path else tree  # JSON trees: untyped by nature
    key: Any = path[-1][1] if path else None
    if op == 0 and path:  # a field (or an element) of the wrong type or out of range
        parent[key] = junk(rng)
    elif op == 1 and path:  # a missing field or element
        del parent[key]
    elif op == 2:  # an extra key, perhaps a real field name of another class
        cls = rng.choice([*FRAME_TYPES.values(), *REQUEST_TYPES.values()])
        names = [a.name.replace("_", "-") for a in attrs.fields(cls)] or ["x"]
        _dict_on(path, tree)[rng.choice([*names, *STRINGS])] = junk(rng)
    elif op == 3:  # the same key twice, the junk one first or last
        target = _dict_on(path, tree)
        name = rng.choice([k for k in target if isinstance(k, str)] or [tag])
        items = list(target.items())
        items.insert(rng.randrange(len(items) + 1), (DupKey(name), junk(rng)))
        target.clear()
        target.update(items)
    elif op == 4:  # a renamed field: python spelling, other case, another field's name
        target = _dict_on(path, tree)
        old = rng.choice(list(target) or [0])
        if isinstance(old, str):
            new = rng.choice([old.replace("-", "_"), old.upper(), old + " ", rng.choice(STRINGS)])
            target[new] = target.pop(old)
    elif op == 5:  # another tag, an unknown one, or not a string
        kinds = sorted(FRAME_TYPES) if tag == "type" else sorted(REQUEST_TYPES)
        tree[tag] = rng.choice([*kinds, *kinds, "gossip", "Send", None, 1, [kinds[0]]])
    elif op == 6 and path:  # numbers and strings at their edges
        parent[key] = rng.choice(INTS) if rng.random() < 0.5 else rng.choice(STRINGS)
    elif op == 7:  # many entries: a big clock, a long member list
        grown = parent if path else tree
        item = grown[key] if path else next(iter(tree.values()), None)
        # Sized so that inputs reach about twice the cap, not gigabytes.
        count = rng.choice([2, 10, 100]) if rng.random() < 0.9 else rng.choice([1000, 10_000])
        count = min(count, 2 * MAX_FRAME_BYTES // (len(repr(item)) + 8))
        if isinstance(grown, list):
            grown.extend([item] * count)
        else:
            grown.update({f"k{i}": item for i in range(count)})
    elif path:  # a value wrapped in a list or an object
        parent[key] = [parent[key]] if rng.random() < 0.5 else {"value": parent[key]}


_DIGIT = re.compile(rb"[0-9]")


def mutate_bytes(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """One raw change to an encoding."""
    buf = bytearray(data)
    op = rng.randrange(9)
    pos = rng.randrange(len(buf) + 1)
    end = min(len(buf), pos + rng.choice([1, 2, 4, 16, 64]))
    if op == 0 and pos < len(buf):
        buf[pos] ^= 1 << rng.randrange(8)
    elif op == 1 and pos < len(buf):
        buf[pos] = rng.randrange(256)
    elif op == 2:
        buf[pos:pos] = rng.choice(BYTE_TOKENS)
    elif op == 3:
        del buf[pos:end]
    elif op == 4:
        buf[pos:pos] = buf[pos:end] * rng.choice([1, 2, 100])
    elif op == 5:
        del buf[pos:]
    elif op == 6:  # splice in a piece of another valid encoding
        other = rng.choice(others)
        start = rng.randrange(len(other) + 1)
        buf[pos:end] = other[start : start + rng.randrange(1, 64)]
    elif op == 7:
        buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    else:  # a digit run made huge or negative
        if digit := _DIGIT.search(buf, pos) or _DIGIT.search(buf):
            at = digit.start()
            buf[at:at] = rng.choice([b"-", b"9" * 20, b"0", b".5", b"e9"])
    return bytes(buf)
