"""Generating JSON: well-typed bodies of the wire classes, junk values biased towards edge
cases, and JSON text written in random styles (with tokens that are not quite JSON)."""

from __future__ import annotations

import json
import random
import typing
from typing import Any

import attrs

from chat.wire import (
    FRAME_TYPES,
    MAX_FRAME_BYTES,
)
from chat.wire import bounds as b
from chat.wire.control import REQUEST_TYPES
from chat_testing.fuzz.common import short
from chatd.control.server import MAX_REQUEST_BYTES

# Generating inputs ----------------------------------------------------------------------


class Raw:
    """A token written as is: NaN, Infinity, 1e999, -0, deep nesting."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({short(self.text)})"


class DupKey(str):
    """A second key of the same name in one object: equal only to itself, so a dict holds
    it beside the original, and written as the plain name."""

    __slots__ = ()
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__


INTS = [
    *(0, 1, -1, 2, 7, 255, 256, 65535, 2**31 - 1, 2**31, -(2**31) - 1, 2**32),
    *(2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1),
    *(2**64 - 1, 2**64, -(2**64), 10**20, -(10**20), 10**30, 10**400, -(10**400)),
]
STRINGS = [
    *("", "a", "n1", "0", "type", "op", "node-id", "node_id", "null", "true", " "),
    *("é", "漢字", "😀", "\u2028", "\u0000", "\x1f", "\x7f", "\ufeff", "\uffff", "\U0010ffff"),
    *("\ud800", "\udfff", "\ud83d", "\ud83d\ude00", "\ude00\ud83d", '"', "\\", "\n", "{}"),
    *(sorted(FRAME_TYPES) + sorted(REQUEST_TYPES)),
]
LONG_SIZES = [100, 4096, 4097, 20_000, MAX_REQUEST_BYTES + 1, MAX_FRAME_BYTES + 1]
RAW_TOKENS = [
    *("NaN", "-NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "-0", "0.0"),
    *("1.0", "1E2", "1e2", "01", "+1", ".5", "1.", "0x10", "1_000", "true", "True", "nul"),
    *("undefined", "'a'", '"\\x41"', '"\\u12"', '"\\ud800"', '"\\udc00\\ud800"', "[,]"),
    *("{,}", '{"a"}', "[1,]", '{"a":1,}', "/*c*/1", "9" * 30, "-" + "9" * 30, "1" * 400),
]
BYTE_TOKENS = [
    *(b'"', b"\\", b"{", b"}", b"[", b"]", b",", b":", b" ", b"\n", b"\x00", b"null"),
    *(b"NaN", b"1e999", b"-", b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xef\xbb\xbf"),
    *(b"\xf4\x90\x80\x80", b"\\u0000", b"\\ud800", b"18446744073709551616", b"-0", b"[[[[["),
]
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(STRINGS[:24])  # valid UTF-8 only: no lone surrogates
    if roll < 0.8:
        return "".join(chr(rng.randrange(32, 127)) for _ in range(rng.randrange(1, 20)))
    if roll < 0.97:
        return "".join(chr(rng.randrange(0xA0, 0xD7FF)) for _ in range(rng.randrange(1, 8)))
    return "x" * rng.choice(LONG_SIZES[:4])


def valid_value(tp: Any, rng: random.Random, depth: int = 0) -> Any:
    """A well-typed value for a field of a wire class, as the converter would unstructure it."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str:
        return _text(rng)
    if tp is bool:
        return rng.random() < 0.5
    if tp is int:
        value = rng.choice(INTS) if rng.random() < 0.3 else rng.randrange(-3, 1000)
        return value if -(2**63) <= value < 2**64 else 0
    if origin is list:
        return [valid_value(args[0], rng, depth + 1) for _ in range(rng.randrange(4))]
    if origin is dict:
        size = rng.randrange(4) if rng.random() < 0.95 else rng.randrange(50, 500)
        return {valid_value(args[0], rng): valid_value(args[1], rng) for _ in range(size)}
    if attrs.has(tp):
        return valid_body(tp, rng, depth + 1)
    raise AssertionError(f"no values for {tp!r}")


# Fields narrower than their type, so that most generated frames get past them: a
# member name (chat.names), and the reasons in nodes.departed.
_NAMES = ["alice", "Bob", "carol d", "Zoë", "日本語", "x" * 32, "a\u202eb", "a#b", " a", ""]


def _narrow_value(name: str, rng: random.Random) -> Any:
    if name == "name":
        return rng.choice(_NAMES) if rng.random() < 0.8 else _text(rng)
    if name == "departed":
        reasons = [*b.DEPARTURES, "exploded"] if rng.random() < 0.1 else list(b.DEPARTURES)
        return {_text(rng): rng.choice(reasons) for _ in range(rng.randrange(4))}
    return None


def valid_body(cls: type, rng: random.Random, depth: int = 0) -> dict[str, Any]:
    hints = _hints(cls)
    body: dict[str, Any] = {}
    for a in attrs.fields(cls):
        if a.default is not attrs.NOTHING and rng.random() < 0.3:
            continue  # left out: the default applies
        narrow = _narrow_value(a.name, rng)
        value = narrow if narrow is not None else valid_value(hints[a.name], rng, depth)
        body[a.name.replace("_", "-")] = value
    return body


def _deep(rng: random.Random) -> Raw:
    depth = rng.choice([64, 1000, 1023, 1024, 1025, 5000])
    if rng.random() < 0.5:
        return Raw("[" * depth + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


def junk(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value (and some that are not quite JSON), biased towards edge cases."""
    roll = rng.randrange(12)
    if roll == 0:
        return None
    if roll == 1:
        return rng.random() < 0.5
    if roll == 2:
        return rng.choice(INTS)
    if roll == 3:
        return rng.choice([0.0, -0.0, 0.5, 1.0, -1.5, 1e308, 5e-324, float("nan")])
    if roll == 4:
        return rng.choice(STRINGS)
    if roll == 5:
        return Raw(rng.choice(RAW_TOKENS))
    if roll == 6:
        return "x" * rng.choice(LONG_SIZES) if rng.random() < 0.1 else _text(rng)
    if roll == 7 and depth < 3:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    if roll == 8 and depth < 3:
        return {rng.choice(STRINGS): junk(rng, depth + 1) for _ in range(rng.randrange(4))}
    if roll == 9:
        return _deep(rng) if rng.random() < 0.2 else [[[[]]]]
    if roll == 10:  # a well-typed body of another class, where it does not belong
        cls = rng.choice([*FRAME_TYPES.values(), *REQUEST_TYPES.values()])
        return valid_body(cls, rng, depth + 1)
    return rng.choice([{}, [], "", 0, {"": None}])


def emit(value: Any, rng: random.Random) -> bytes:
    """JSON text, in a random style; lone surrogates written raw are invalid UTF-8 bytes."""
    raws: dict[int, Raw] = {}

    def placeholder(raw: Any) -> str:
        # The C encoder does the bulk; each Raw is a placeholder string, swapped afterwards.
        if not isinstance(raw, Raw):
            raise TypeError(f"cannot emit {type(raw).__name__}")
        raws[id(raw)] = raw
        return f"\0raw{id(raw)}\0"

    sep = rng.choice([(",", ":"), (", ", ": "), ("\n ,\t", "\r\n:  ")])
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5, separators=sep, default=placeholder)
    for key, raw in raws.items():
        text = text.replace(f'"\\u0000raw{key}\\u0000"', raw.text)
    return text.encode("utf-8", "surrogatepass")
