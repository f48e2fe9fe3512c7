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


def _strict(kind: type, check: Callable[[Any], bool]) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if not check(value):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return hook


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    _strict_scalars(conv)
    _bounded_collections(conv)
    _attrs_classes(conv)
    return conv


def _strict_scalars(conv: cattrs.Converter) -> None:
    """str, int, bool and float as themselves only: no coercion (an int is a float)."""
    conv.register_structure_hook(str, _strict(str, lambda v: isinstance(v, str)))
    conv.register_structure_hook(
        int, _strict(int, lambda v: isinstance(v, int) and not isinstance(v, bool))
    )
    conv.register_structure_hook(bool, _strict(bool, lambda v: isinstance(v, bool)))
    conv.register_structure_hook(
        float,
        lambda v, _: (
            float(v)
            if isinstance(v, int | float) and not isinstance(v, bool)
            else _strict(float, lambda _v: False)(v, None)
        ),
    )


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

        def hook(value: Any, _: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected object, got {type(value).__name__}")
            if len(value) > MAX_COLLECTION:
                raise ValueError(f"{len(value)} entries, over {MAX_COLLECTION}")
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


converter = _make_converter()


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


def structure(obj: Any, cls: type[T]) -> T:
    """Structure ``obj`` as ``cls`` strictly; raises ``DecodeError`` saying what is wrong."""
    try:
        return converter.structure(obj, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise DecodeError(f"invalid {getattr(cls, '__name__', cls)}: {_describe(exc)}") from None


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
