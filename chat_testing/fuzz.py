"""Fuzzing the decoders that take bytes from outside: peer frames, control requests, IRC lines.

For any input the decoder returns a valid object or raises ``DecodeError``; nothing else
escapes, it never hangs, and what it accepts re-encodes to bytes that decode to the same
object. ``check_frame``, ``check_request`` and ``check_lines`` are that invariant, one
function per decoder; ``FRAME_BOUNDS`` and ``REQUEST_BOUNDS`` hold the documented ranges an
accepted value must lie in (add one with each range check the wire gains).

Inputs are made by a seeded loop, not hypothesis: it runs 3,000-8,000 inputs a second
where hypothesis's structured strategies (tests/core/test_wire.py) manage 200-500. Each
starts as a valid frame or request of a random type; 15% stay valid (in random JSON
styles), 40% get structure-aware changes (wrong types, huge/negative/beyond-64-bit
numbers, null, junk, lone surrogates, NaN, deep nesting, duplicate, extra or missing
keys), 37% raw byte mutations of the encoding, 8% are random bytes; plus fixed worst
cases at the size cap. Every input is reproducible from ``seed`` and its index::

    python -m chat_testing.fuzz [--cases N] [--seed S] [--decoder NAME] [--case I]
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import json
import random
import re
import sys
import time
import traceback
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, TypeVar

import attrs
import trio

from chat.auth import (
    MAX_SECRETS,
    MIN_SECRET_BYTES,
    DirectorProof,
    Keyring,
    SecretError,
    parse_director_proof,
    parse_keyring,
)
from chat.names import name_problem
from chat.wire import (
    FRAME_TYPES,
    MAX_FRAME_BYTES,
    DecodeError,
    Frame,
    Request,
    decode_frame,
    decode_json,
    decode_request,
    encode,
    encode_frame,
    unstructure,
)
from chat.wire import bounds as b
from chat.wire.control import REQUEST_TYPES
from chatd.control.server import MAX_REQUEST_BYTES
from chatd.irc.parse import MAX_PARAMS, IrcMessage, IrcParseError, format_message, parse_line
from chatd.lines import LineReader

# One decode of an input under the size cap taking longer than this is a failure: the
# slowest today (1 MiB worst cases) take under 0.1 s, so only super-linear work trips it.
SLOW_SECONDS = 1.0
# A decoder stuck this long (in C, where no Python check runs) is killed by faulthandler,
# with its traceback; the printed seed reproduces it.
HANG_SECONDS = 60.0

T = TypeVar("T")

# Bounds ---------------------------------------------------------------------------------

Check = Callable[[str, Any], str | None]


def bound(pattern: str, ok: Callable[[Any], bool], what: str) -> Check:
    """A documented bound: every value at a path matching ``pattern`` satisfies ``ok``.

    Paths are wire names: ``heartbeat.term``, ``heartbeat.digest`` (the clock itself, to
    bound its entry count), ``heartbeat.digest{}`` (each count), ``heartbeat.digest{key}``
    (each node-id), ``nodes.node[].priority``; requests are ``send.text``, ``tail.last``.
    Patterns are ``fnmatch`` patterns: ``*.term``, ``*vector-clock{}``.
    """

    def check(path: str, value: Any) -> str | None:
        if fnmatchcase(path, pattern) and not ok(value):
            return f"{path} = {_short(value)} is not {what}"
        return None

    return check


# None yet beyond what orjson guarantees (integers in [-2**63, 2**64 - 1]). For example:
#   bound("*.term", lambda term: 0 <= term <= MAX_TERM, "a term in [0, MAX_TERM]"),
#   bound("*vector-clock", lambda clock: len(clock) <= MAX_CLOCK, "at most MAX_CLOCK entries"),
FRAME_BOUNDS: list[Check] = [
    bound("*.term", lambda t: 0 <= t <= b.MAX_TERM, "terms in [0, 2**53)"),
    bound("*.version", lambda v: 0 <= v <= b.MAX_SAFE_INT, "versions in [0, 2**53)"),
    bound("*priority", lambda p: b.MIN_PRIORITY <= p <= b.MAX_PRIORITY, "32-bit priorities"),
    bound("*vector-clock", lambda c: len(c) <= b.MAX_CLOCK_ENTRIES, "clock entries"),
    bound("*.digest", lambda c: len(c) <= b.MAX_CLOCK_ENTRIES, "digest entries"),
    bound("*vector-clock{}", lambda n: 0 <= n <= b.MAX_SEQUENCE, "sequence numbers"),
    bound("*.digest{}", lambda n: 0 <= n <= b.MAX_SEQUENCE, "sequence numbers"),
    bound("*node-id", lambda i: len(i) <= b.MAX_ID_CHARS, "node-id length"),
    bound("*.name", lambda n: name_problem(n) is None, "a valid name (chat.names)"),
    bound("nodes.departed", lambda d: len(d) <= b.MAX_MEMBERS, "departed entries"),
    bound("nodes.departed{}", lambda r: r in b.DEPARTURES, "a departure reason"),
    bound("*.message", lambda t: len(t) <= b.MAX_TEXT_CHARS, "text length"),
    bound("nodes.node", lambda m: len(m) <= b.MAX_MEMBERS, "members"),
]
REQUEST_BOUNDS: list[Check] = []


def _check_bounds(name: str, body: dict[str, Any], bounds: list[Check]) -> None:
    if not bounds:
        return  # the walk costs as much as decoding
    for key, value in body.items():
        _check_value(f"{name}.{key}", value, bounds)


def _check_value(path: str, value: Any, bounds: list[Check]) -> None:
    for check in bounds:
        if (problem := check(path, value)) is not None:
            raise AssertionError(f"accepted out of bounds: {problem}")
    if isinstance(value, dict):
        key_path, item_path = f"{path}{{key}}", f"{path}{{}}"
        for key, item in value.items():
            _check_value(key_path, key, bounds)
            _check_value(item_path, item, bounds)
    elif isinstance(value, list):
        item_path = f"{path}[]"
        for item in value:
            _check_value(item_path, item, bounds)


# The invariants -------------------------------------------------------------------------


_slowest = 0.0


def _timed(decode: Callable[[Any], T], data: Any) -> T:
    """``decode(data)``, failing when it takes longer than SLOW_SECONDS."""
    global _slowest
    start = time.perf_counter()
    try:
        return decode(data)
    finally:
        took = time.perf_counter() - start
        _slowest = max(_slowest, took)
        assert took <= SLOW_SECONDS, f"decoding took {took:.2f} s (limit {SLOW_SECONDS} s)"


def check_frame(data: bytes | str) -> Frame | None:
    """The peer frame decoder's invariant; the frame, None for a DecodeError, else raises."""
    try:
        frame = _timed(decode_frame, data)
    except DecodeError as exc:
        assert str(exc), "a DecodeError must say why"
        return None
    assert type(frame) in FRAME_TYPES.values(), f"decoded to {type(frame).__name__}"
    _check_bounds(frame.TYPE, unstructure(frame), FRAME_BOUNDS)
    again = encode_frame(frame)
    # Not capped: the re-encoding writes out defaults the input left out, so an accepted
    # frame just under the cap can come back a few bytes over it.
    back = decode_frame(again, limit=len(again))
    assert back == frame, "re-encoded, decodes differently"
    assert encode_frame(back) == again, "no fixed point"
    return frame


def check_request(line: bytes | str) -> Request | None:
    """The control request decoder's invariant, decoding as ``ControlServer._dispatch``."""
    try:
        request = _timed(_decode_request, line)
    except DecodeError as exc:
        assert str(exc), "a DecodeError must say why"
        return None
    assert type(request) in REQUEST_TYPES.values(), f"decoded to {type(request).__name__}"
    body = unstructure(request)
    _check_bounds(request.OP, body, REQUEST_BOUNDS)
    # Written the way chatctl writes it.
    again = encode({"op": request.OP, **body})
    assert _decode_request(again) == request, "re-encoded, decodes differently"
    return request


def _decode_request(line: bytes | str) -> Request:
    return decode_request(decode_json(line, MAX_REQUEST_BYTES))


@dataclass(frozen=True)
class Stream:
    """What a control client sends: ``data`` arriving in ``chunks``, read with ``limit``."""

    data: bytes
    chunks: tuple[int, ...]
    limit: int


class _Chunks(trio.abc.ReceiveStream):
    def __init__(self, stream: Stream) -> None:
        self._data = memoryview(stream.data)
        self._sizes = list(stream.chunks)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        # Never suspends, so next_line() runs to completion in one coroutine step.
        size = self._sizes.pop(0) if self._sizes else len(self._data)
        size = min(size, max_bytes or size)
        chunk, self._data = bytes(self._data[:size]), self._data[size:]
        return chunk

    async def aclose(self) -> None:
        pass


def expected_lines(stream: Stream) -> tuple[list[bytes], bool]:
    """The lines a control connection must yield, and whether a line over the limit ends it."""
    *complete, last = stream.data.split(b"\n")
    lines: list[bytes] = []
    for line in [*complete, last]:
        if len(line) > stream.limit:
            return lines, True
        lines.append(line)
    if not last.strip():
        lines.pop()
    return lines, False


def _read_lines(stream: Stream) -> tuple[list[bytes], DecodeError | None]:
    # The reader keeps a deadline for a partial line (a trio cancel scope): run it in trio.
    async def read() -> tuple[list[bytes], DecodeError | None]:
        reader = LineReader(_Chunks(stream), stream.limit)
        lines: list[bytes] = []
        most = stream.data.count(b"\n") + 1
        try:
            while (line := await reader.next_line()) is not None:
                lines.append(line)
                if len(lines) > most:
                    break  # more lines than the data holds: the reader repeats itself
        except DecodeError as exc:
            return lines, exc
        return lines, None

    return trio.run(read)


def check_lines(stream: Stream) -> list[bytes]:
    """LineReader's invariant: the lines of the data in order, then the end, whatever the
    chunking; DecodeError exactly where a line is over the limit; each line then decodes
    as a request or raises DecodeError."""
    want, too_long = expected_lines(stream)
    got, refused = _timed(_read_lines, stream)
    assert len(got) <= len(want), f"extra line {_short(got[len(want)])} after {len(want)}"
    assert got == want, "lines differ from the data split at newlines"
    if refused is not None:
        assert too_long, f"DecodeError for lines within the limit: {refused}"
    else:
        assert not too_long, "a line over the limit was not refused"
    # The first few lines as requests too (the request decoder has its own run).
    for line in [line for line in got if line.strip()][:3]:
        check_request(line)
    return got


# Generating inputs ----------------------------------------------------------------------


class Raw:
    """A token written as is: NaN, Infinity, 1e999, -0, deep nesting."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({_short(self.text)})"


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


def _document(
    rng: random.Random, kinds: dict[str, Any], tag: str, others: list[bytes], cap: int
) -> bytes | str:
    name, cls = rng.choice(list(kinds.items()))
    tree: dict[Any, Any] = {tag: name, **valid_body(cls, rng)}
    roll = rng.random()
    if roll < 0.15:  # valid, in any style: must decode
        data = emit(tree, rng)
    elif roll < 0.55:
        for _ in range(rng.choice([1, 1, 1, 2, 3, 5])):
            mutate_tree(tree, tag, rng)
        data = emit(tree, rng)
    elif roll < 0.92:
        if rng.random() < 0.3:
            mutate_tree(tree, tag, rng)
        data = emit(tree, rng)
        for _ in range(rng.choice([1, 1, 2, 3, 8])):
            data = mutate_bytes(data, rng, others)
    elif roll < 0.96:
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    else:
        data = b"".join(rng.choice(BYTE_TOKENS) for _ in range(rng.randrange(1, 32)))
    if len(data) > 2 * cap:  # grown too far: anything over the cap is refused alike
        data = data[: rng.choice([cap, cap + 1, 2 * cap])]
    if rng.random() < 0.1:  # as a websocket text message or a str caller would pass it
        return data.decode("utf-8", rng.choice(["surrogateescape", "replace"]))
    return data


def _samples(kinds: dict[str, Any], tag: str) -> list[bytes]:
    rng = random.Random(0)
    return [emit({tag: name, **valid_body(cls, rng)}, rng) for name, cls in kinds.items()]


_FRAME_SAMPLES = _samples(FRAME_TYPES, "type")
_REQUEST_SAMPLES = _samples(REQUEST_TYPES, "op")


def frame_input(rng: random.Random) -> bytes | str:
    return _document(rng, FRAME_TYPES, "type", _FRAME_SAMPLES, MAX_FRAME_BYTES)


def request_input(rng: random.Random) -> bytes | str:
    return _document(rng, REQUEST_TYPES, "op", _REQUEST_SAMPLES, MAX_REQUEST_BYTES)


def stream_input(rng: random.Random) -> Stream:
    limit = rng.choice([0, 1, 8, 64, 4096, MAX_REQUEST_BYTES])
    lines: list[bytes] = []
    for _ in range(rng.randrange(6)):
        roll = rng.random()
        if roll < 0.6:
            line = request_input(rng)
            lines.append(line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line)
        elif roll < 0.8:
            lines.append(rng.choice([b"", b" ", b"\t\r", b"\r", b"\x00", b"\n\n"]))
        else:  # right at the limit, or just over
            lines.append(b"x" * max(0, limit + rng.choice([-1, 0, 1])))
    data = rng.choice([b"\n", b"\r\n", b"\n\n"]).join(lines)
    if rng.random() < 0.7:
        data += b"\n"
    chunks: list[int] = []
    while sum(chunks) < len(data) and rng.random() < 0.9:
        chunks.append(rng.choice([1, 2, 3, 7, 100, 4096, 65536]))
    return Stream(data, tuple(chunks), limit)


# Worst cases at the size cap --------------------------------------------------------------


def _fill(head: bytes, item: Callable[[int], bytes], tail: bytes, cap: int) -> bytes:
    """``head`` + as many ``item(i)``, comma-separated, as fit in ``cap`` bytes + ``tail``."""
    parts, size, i = [], len(head) + len(tail), 0
    while size + len(item(i)) + 1 <= cap:
        parts.append(item(i))
        size += len(parts[-1]) + (1 if i else 0)
        i += 1
    return head + b",".join(parts) + tail


def _cap_cases(tag: bytes, cap: int) -> list[tuple[str, bytes]]:
    """Inputs of (nearly) the maximum size that are expensive in different ways."""
    message = (
        b'{"id":"i","node-id":"n","name":"a","timestamp":"t","message":"m",'
        b'"vector-clock":{"n":1},"public-key":"k","signature":"s"}'
    )
    head = b'{"type":' if tag == b"type" else b'{"op":'
    cases = [
        ("over the cap", b" " * (cap + 1)),
        ("whitespace", b" " * (cap - 40) + head + b'"join"}'),
        ("open brackets", b"[" * cap),
        ("nesting at the depth limit", b"[" * 1023 + b"0" + b"]" * 1023),
        ("digits", head + b'"leave","term":' + b"9" * (cap - 40) + b"}"),
        ("fraction digits", head + b'"leave","term":0.' + b"9" * (cap - 40) + b"}"),
        ("escapes", head + b'"leave","node-id":"' + b"\\u0041" * ((cap - 60) // 6) + b'"}'),
        ("surrogate pairs", _fill(head + b'"auth","x":"', lambda i: b"\\ud83d\\ude00", b'"}', cap)),
        ("extra keys", _fill(head + b'"join",', lambda i: b'"k%d":1' % i, b"}", cap)),
        ("duplicate keys", _fill(head + b'"join",', lambda i: b'"vector-clock":{}', b"}", cap)),
        (
            "big clock",
            _fill(head + b'"join","vector-clock":{', lambda i: b'"n%d":1' % i, b"}}", cap),
        ),
        (
            "bad last count",
            _fill(
                head + b'"heartbeat","node-id":"n","term":1,"digest":{',
                lambda i: b'"n%d":1' % i,
                b',"z":null}}',
                cap,
            ),
        ),
        ("messages", _fill(head + b'"discussion","messages":[', lambda i: message, b"]}", cap)),
        (
            "neighbours",
            _fill(
                head + b'"nodes","node":[],"term":1,"coordinator":"n","neighbours":{',
                lambda i: b'"n%d":["a","b"]' % i,
                b"}}",
                cap,
            ),
        ),
        ("empty objects", _fill(head + b'"discussion","messages":[', lambda i: b"{}", b"]}", cap)),
        ("send text", head + b'"send","text":"' + b"x" * (cap - 40) + b'"}'),
    ]
    return [(name, data) for name, data in cases if len(data) <= cap + 1]


# Running ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decoder:
    name: str
    make: Callable[[random.Random], Any]
    check: Callable[[Any], Any]
    cap_cases: list[tuple[str, Any]]


def _streams_at_cap() -> list[tuple[str, Stream]]:
    return [
        (name, Stream(data + b"\n" + data, (65536,) * 40, MAX_REQUEST_BYTES))
        for name, data in _cap_cases(b"op", MAX_REQUEST_BYTES)[:6]
    ]


# Secrets: the director's proof header and the secret file ---------------------------------

_PROOF_SAMPLES = [
    DirectorProof(0, "0" * 32, "0" * 64).header().encode(),
    DirectorProof(10**12 - 1, "f" * 32, "a" * 64).header().encode(),
    DirectorProof(1_764_590_000, "0123456789abcdef" * 2, "deadbeef" * 8).header().encode(),
]


def proof_input(rng: random.Random) -> str:
    """An ``X-Chat-Proof`` value as hypercorn hands it over (latin-1): valid, or mutated."""
    data = rng.choice(_PROOF_SAMPLES)
    for _ in range(rng.choice([0, 1, 1, 2, 3, 8])):
        data = mutate_bytes(data, rng, _PROOF_SAMPLES)
    return data.decode("latin-1")


def check_proof(value: str) -> DirectorProof | None:
    """The proof parser's invariant: None, or a proof that prints back to the same value."""
    proof = _timed(parse_director_proof, value)
    if proof is None:
        return None
    assert proof.header() == value, "a parsed proof must print back to its header"
    assert 0 <= proof.timestamp < 10**12 and len(proof.nonce) == 32 and len(proof.mac) == 64
    return proof


_SECRET_LINES = [
    b"a-group-secret-of-32-bytes-xxxxx",
    b"  another-secret-0123456789abcdef  ",
    b"# a comment",
    b"",
    b"short",
    b"x" * 15,
    b"y" * 16,
    b"\t\r",
    bytes(range(256)),
]


def secret_file_input(rng: random.Random) -> bytes:
    """A secret file: lines of secrets, comments, blanks and junk, then mutated."""
    lines = [rng.choice(_SECRET_LINES) for _ in range(rng.randrange(12))]
    data = rng.choice([b"\n", b"\r\n", b"\r"]).join(lines)
    for _ in range(rng.choice([0, 0, 1, 3])):
        data = mutate_bytes(data, rng, _SECRET_LINES)
    return data


def check_secret_file(data: bytes) -> Keyring | None:
    """The secret file parser's invariant: a ``SecretError`` that says why, or a keyring of
    distinct stripped secrets, each long enough, at most ``MAX_SECRETS``."""
    try:
        keyring = _timed(functools.partial(parse_keyring, source="secret file F"), data)
    except SecretError as exc:
        assert str(exc).startswith("secret file F"), "a SecretError must name its file"
        return None
    secrets = keyring.secrets
    assert 1 <= len(secrets) <= MAX_SECRETS and len(set(secrets)) == len(secrets)
    for secret in secrets:
        assert len(secret) >= MIN_SECRET_BYTES and secret == secret.strip()
        assert not secret.startswith(b"#") and secret in data
    return keyring


# IRC lines from a client (chatd.irc.parse) ---------------------------------------------------

_IRC_SAMPLES = [
    b"CAP LS 302",
    b"CAP REQ :server-time message-tags",
    b"PASS s3cret-password",
    b"NICK alice",
    b"USER alice 0 * :Alice Liddell",
    b"JOIN #chat",
    b"PRIVMSG #chat :hello there",
    b"PRIVMSG #chat :\x01ACTION waves\x01",
    b"NOTICE #chat :caf\xc3\xa9 \xf0\x9f\x98\x80",
    b"@+typing=active;msgid=a\\sb\\:c;flag TAGMSG #chat",
    b"@time=2026-12-01T10:00:00.000Z :src!u@h PRIVMSG #chat ::-) x",
    b"WHO #chat",
    b"MODE #chat +b",
    b"PING :token with spaces",
    b"QUIT :bye",
    b"001 me :welcome",
]
_IRC_TOKENS = [b" ", b":", b"@", b";", b"=", b"\\", b"\r", b"\x00", b"\x01", b"\xff", b"#", b"!"]


def irc_line_input(rng: random.Random) -> bytes:
    """A line as the gateway's reader hands it over (no LF): valid, mutated or junk."""
    roll = rng.random()
    if roll < 0.08:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    data = rng.choice(_IRC_SAMPLES)
    if roll < 0.2:
        return data
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        if rng.random() < 0.3:
            pos = rng.randrange(len(data) + 1)
            data = data[:pos] + rng.choice(_IRC_TOKENS) * rng.choice([1, 2, 15, 300]) + data[pos:]
        else:
            data = mutate_bytes(data, rng, _IRC_SAMPLES)
    return data.replace(b"\n", b"")


def check_irc_line(raw: bytes) -> IrcMessage | None:
    """The IRC parser's invariant: None (blank), ``IrcParseError`` saying why, or a message
    within the bounds that writes back to a line parsing to the same message."""
    try:
        message = _timed(parse_line, raw)
    except IrcParseError as exc:
        assert str(exc), "an IrcParseError must say why"
        return None
    if message is None:
        assert not raw.strip(b" \r"), "a line with content parsed as blank"
        return None
    assert message.command and message.command == message.command.upper()
    assert len(message.params) <= MAX_PARAMS
    # Tag values may hold CR and LF (escaped on the wire); parameters never.
    for text in message.params:
        assert not any(c in text for c in "\0\r\n"), "NUL, CR or LF in a parameter"
    again = format_message(message)
    assert parse_line(again.removesuffix(b"\r\n")) == message, "written back, parses differently"
    return message


DECODERS = {
    d.name: d
    for d in [
        Decoder("frame", frame_input, check_frame, _cap_cases(b"type", MAX_FRAME_BYTES)),
        Decoder("request", request_input, check_request, _cap_cases(b"op", MAX_REQUEST_BYTES)),
        Decoder("line-reader", stream_input, check_lines, _streams_at_cap()),
        Decoder("director-proof", proof_input, check_proof, [("long", "v2 t=" + "9" * 8000)]),
        Decoder(
            "secret-file",
            secret_file_input,
            check_secret_file,
            [("many lines", b"a-group-secret-of-32-bytes-xxxxx\n" * 2000)],
        ),
        Decoder(
            "irc-line",
            irc_line_input,
            check_irc_line,
            [
                ("at the read cap", b"@" + b"a=" * 2047 + b" PRIVMSG #chat :" + b"x" * 494),
                ("many parameters", b"X" + b" a" * 254),
                ("escapes", b"@a=" + b"\\" * 4000 + b" PING x"),
            ],
        ),
    ]
}


@dataclass
class Failure:
    decoder: str
    case: str
    data: Any
    error: str

    def __str__(self) -> str:
        return (
            f"{self.decoder} case {self.case}: input ({_size(self.data)}) "
            f"{_short(self.data, 400)}\n{self.error}"
        )


@dataclass
class Result:
    decoder: str
    inputs: int = 0
    accepted: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    failures: list[Failure] = field(default_factory=list)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


def _size(data: Any) -> str:
    if isinstance(data, Stream):
        return f"{len(data.data)} bytes in {len(data.chunks)} chunks, limit {data.limit}"
    return f"{len(data)} {'bytes' if isinstance(data, bytes) else 'chars'}"


def case_input(decoder: Decoder, seed: int, case: int) -> Any:
    """Input number ``case`` of a run with ``seed``: the same on every machine."""
    return decoder.make(random.Random(f"{seed}:{decoder.name}:{case}"))


def _run_one(decoder: Decoder, case: str, data: Any, result: Result) -> None:
    try:
        accepted = decoder.check(data)
    except Exception:
        result.failures.append(Failure(decoder.name, case, data, traceback.format_exc()))
        accepted = None
    result.inputs += 1
    result.accepted += accepted is not None and accepted != []


def run(decoder: Decoder, cases: int, seed: int, only: int | None = None) -> Result:
    """``cases`` generated inputs and every size-cap case (or just case ``only``)."""
    global _slowest
    result, _slowest = Result(decoder.name), 0.0
    start = time.perf_counter()
    numbers = range(cases) if only is None else [only]
    try:
        # Re-armed per batch (arming starts a thread); fd 2 is stderr even under capture.
        for first in range(0, len(numbers), 1000):
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=2)
            for case in numbers[first : first + 1000]:
                _run_one(decoder, str(case), case_input(decoder, seed, case), result)
        if only is None:
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=2)
            for name, data in decoder.cap_cases:
                _run_one(decoder, f"at the size cap: {name}", data, result)
    finally:
        faulthandler.cancel_dump_traceback_later()
    result.seconds = time.perf_counter() - start
    result.slowest = _slowest
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat_testing.fuzz", description=__doc__)
    parser.add_argument("--cases", type=int, default=100_000, help="inputs per decoder")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--decoder", choices=sorted(DECODERS), action="append")
    parser.add_argument("--case", type=int, default=None, help="run only this input")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"fuzz seed {seed} (same inputs again: --seed {seed})", flush=True)
    crashed = False
    for name in args.decoder or list(DECODERS):
        result = run(DECODERS[name], args.cases, seed, args.case)
        for failure in result.failures[:5]:
            print(f"FAILED {failure}", file=sys.stderr)
        print(
            f"{name:<12} {result.inputs:>8} inputs ({result.accepted} accepted)"
            f"  {len(result.failures)} crashes  {result.seconds:6.1f} s"
            f"  (slowest decode {result.slowest * 1000:.0f} ms)",
            flush=True,
        )
        crashed |= bool(result.failures)
    if crashed:
        print(f"reproduce one: --seed {seed} --decoder NAME --case N", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
