"""The one cattrs converter, and the guarded JSON codec every boundary uses.

The converter is strict: no coercion (``null`` is not the string ``"None"``, ``true`` is not
``1``, a string is not a list), no unknown keys, and attribute ``node_id`` is ``node-id`` on
the wire. JSON is decoded by orjson, which refuses NaN, lone surrogates, integers beyond
64 bits and nesting deeper than 1024; the size cap is checked before any parsing.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import cattrs
import orjson
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from chat.wire.frames import FRAME_TYPES, OMIT_IF_DEFAULT, Frame

T = TypeVar("T")

# Largest websocket message a node accepts (trio-websocket closes with 1009 beyond it).
MAX_FRAME_BYTES = 1 << 20
# Largest chat message text, in UTF-8 bytes: a long paragraph, not a file transfer.
MAX_TEXT_BYTES = 4096


# No list or object on the wire is longer than this (the fields' own ranges are tighter:
# chat.wire.bounds); checked before its elements are structured, so a 1 MiB frame of tiny
# entries is refused at once instead of structured first.
MAX_COLLECTION = 8192


class DecodeError(ValueError):
    """Input from outside is not a valid frame or request; the message says why."""


def _wire_name(name: str) -> str:
    return name.replace("_", "-")


def _origin(tp: Any) -> Any:
    return typing.get_origin(tp)


def _expected(kind: str, value: Any) -> TypeError:
    return TypeError(f"expected {kind}, got {type(value).__name__}")


# One function call per value, the exact JSON type checked first (all orjson makes).
def _str(value: Any, _: Any) -> Any:
    if type(value) is str or isinstance(value, str):
        return value
    raise _expected("str", value)


def _int(value: Any, _: Any) -> Any:
    if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _expected("int", value)


def _bool(value: Any, _: Any) -> Any:
    if isinstance(value, bool):
        return value
    raise _expected("bool", value)


def _float(value: Any, _: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise _expected("float", value)


def _make_converter(*, detailed: bool) -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=detailed)
    _strict_scalars(conv)
    _bounded_collections(conv)
    _attrs_classes(conv)
    return conv


def _strict_scalars(conv: cattrs.Converter) -> None:
    """str, int, bool and float as themselves only: no coercion (an int is a float)."""
    for kind, hook in ((str, _str), (int, _int), (bool, _bool), (float, _float)):
        conv.register_structure_hook(kind, hook)


def _bounded_collections(conv: cattrs.Converter) -> None:
    """Lists and objects of the right JSON kind, at most ``MAX_COLLECTION`` long."""

    def list_hook(tp: Any) -> Callable[[Any, Any], Any]:
        (elem,) = typing.get_args(tp)
        elem_hook = conv.get_structure_hook(elem)

        def hook(value: Any, _: Any) -> Any:
            if not isinstance(value, list):
                raise TypeError(f"expected list, got {type(value).__name__}")
            if len(value) > MAX_COLLECTION:  # before structuring each element: cheap
                raise ValueError(f"{len(value)} elements, over {MAX_COLLECTION}")
            return [elem_hook(v, elem) for v in value]

        return hook

    def dict_hook(tp: Any) -> Callable[[Any, Any], Any]:
        key_t, val_t = typing.get_args(tp)
        key_hook = conv.get_structure_hook(key_t)
        val_hook = conv.get_structure_hook(val_t)
        # A vector clock (node-id -> count) is on every message and heartbeat: checked in
        # one loop, without two hook calls per entry.
        plain = key_t is str and val_t in (str, int)

        def hook(value: Any, _: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected object, got {type(value).__name__}")
            if len(value) > MAX_COLLECTION:
                raise ValueError(f"{len(value)} entries, over {MAX_COLLECTION}")
            if plain and all(type(k) is str and type(v) is val_t for k, v in value.items()):
                return dict(value)
            return {key_hook(k, key_t): val_hook(v, val_t) for k, v in value.items()}

        return hook

    conv.register_structure_hook_factory(lambda t: _origin(t) is list, list_hook)
    conv.register_structure_hook_factory(lambda t: _origin(t) is dict, dict_hook)


def _attrs_classes(conv: cattrs.Converter) -> None:
    """attrs classes as JSON objects with wire names (``node-id``), no unknown keys."""

    def renames(cls: type) -> dict[str, Any]:
        return {
            a.name: override(
                rename=_wire_name(a.name), omit_if_default=a.metadata.get(OMIT_IF_DEFAULT, False)
            )
            for a in attrs.fields(cls)
        }

    def structure_factory(cls: type) -> Callable[[Any, Any], Any]:
        if not isinstance(cls, type):
            raise TypeError(f"cannot structure {cls!r}")

        def strict_structure(value: Any, _: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected object, got {type(value).__name__}")
            return inner(value, cls)

        inner: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cls, conv, _cattrs_forbid_extra_keys=True, **renames(cls)
        )
        return strict_structure

    conv.register_structure_hook_factory(attrs.has, structure_factory)
    conv.register_unstructure_hook_factory(
        attrs.has, lambda cls: make_dict_unstructure_fn(cls, conv, **renames(cls))
    )


# The one converter. Decoding runs without cattrs's detailed validation (a third of the
# cost of a frame); a refused value is structured again by its twin, which differs in
# that alone, to say where and why.
converter = _make_converter(detailed=False)
_explaining = _make_converter(detailed=True)


def _format_error(exc: BaseException, tp: Any) -> str:
    # The strict hooks' TypeError says what was found ("expected int, got str"); cattrs's
    # default names only the field's outer type ("expected dict" for {"a": "1"}).
    # The range validators' ValueError says which field and why ("term: -1 is outside …").
    if isinstance(exc, TypeError | ValueError) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, tp)


def _describe(exc: Exception) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, format_exception=_format_error))
    return str(exc)


_REFUSALS = (
    cattrs.BaseValidationError,
    cattrs.ForbiddenExtraKeysError,
    TypeError,
    ValueError,
    KeyError,
)


def structure(obj: Any, cls: type[T]) -> T:
    """Structure ``obj`` as ``cls`` strictly; raises ``DecodeError`` saying what is wrong."""
    try:
        return converter.structure(obj, cls)
    except _REFUSALS as exc:
        why = _describe(exc)
    try:  # refused: the detailed twin says where
        _explaining.structure(obj, cls)
    except _REFUSALS as exc:
        why = _describe(exc)
    raise DecodeError(f"invalid {getattr(cls, '__name__', cls)}: {why}")


def unstructure(obj: Any) -> Any:
    return converter.unstructure(obj)


def encode(obj: Any) -> bytes:
    """JSON bytes of an attrs object (or plain data), with wire field names."""
    return orjson.dumps(converter.unstructure(obj))


def decode_json(data: bytes | str, limit: int = MAX_FRAME_BYTES) -> Any:
    """Parse JSON from outside, after checking its size."""
    if len(data) > limit:
        raise DecodeError(f"too large: {len(data)} bytes (limit {limit})")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None


def encode_frame(frame: Frame) -> bytes:
    body = converter.unstructure(frame)
    return orjson.dumps({"type": frame.TYPE, **body})


def decode_frame(data: bytes | str, limit: int = MAX_FRAME_BYTES) -> Frame:
    """Decode one peer frame; raises ``DecodeError`` for anything but a valid frame."""
    obj = decode_json(data, limit)
    if not isinstance(obj, dict):
        raise DecodeError("a frame must be a JSON object")
    kind = obj.pop("type", None)
    if not isinstance(kind, str):
        raise DecodeError('a frame needs a string "type"')
    cls = FRAME_TYPES.get(kind)
    if cls is None:
        raise DecodeError(f"unknown frame type {kind[:40]!r}")
    frame: Frame = structure(obj, cls)
    return frame
