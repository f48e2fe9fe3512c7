"""Peer frames and control requests (``chat.wire``): their invariants, the documented
bounds an accepted value must lie in, their inputs and their worst cases at the size cap."""

from __future__ import annotations

import random
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

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
from chat_testing.fuzz.common import short, timed
from chat_testing.fuzz.json_values import BYTE_TOKENS, emit, valid_body
from chat_testing.fuzz.mutate import mutate_bytes, mutate_tree
from chatd.control.server import MAX_REQUEST_BYTES

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
            return f"{path} = {short(value)} is not {what}"
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


def check_frame(data: bytes | str) -> Frame | None:
    """The peer frame decoder's invariant; the frame, None for a DecodeError, else raises."""
    try:
        frame = timed(decode_frame, data)
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
        request = timed(_decode_request, line)
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


# Worst cases at the size cap --------------------------------------------------------------


def _fill(head: bytes, item: Callable[[int], bytes], tail: bytes, cap: int) -> bytes:
    """``head`` + as many ``item(i)``, comma-separated, as fit in ``cap`` bytes + ``tail``."""
    parts, size, i = [], len(head) + len(tail), 0
    while size + len(item(i)) + 1 <= cap:
        parts.append(item(i))
        size += len(parts[-1]) + (1 if i else 0)
        i += 1
    return head + b",".join(parts) + tail


def cap_cases(tag: bytes, cap: int) -> list[tuple[str, bytes]]:
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
