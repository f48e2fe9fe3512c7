"""The control protocol's framing, for the synchronous client (``chatctl.client``) and the
asyncio one (``chatctl.chat.connection``) alike: a request as one JSON line, an answer
line decoded, and an error answer as a ``RemoteError``."""

from __future__ import annotations

from typing import Any, TypeVar

from chat.wire import (
    DecodeError,
    ErrorResponse,
    Request,
    decode_json,
    encode,
    structure,
    unstructure,
)
from chatctl.errors import ProtocolError, RemoteError

T = TypeVar("T")

# Longest answer line accepted: a whole history fits in one line, a runaway peer does not.
MAX_LINE_BYTES = 16 << 20


def request_line(request: Request) -> bytes:
    """``request`` as chatd reads it: one JSON object with its ``op``, and a newline."""
    # The request classes carry their op as a class constant, not a field.
    return encode({"op": request.OP, **unstructure(request)}) + b"\n"


def decode_json_line(line: bytes) -> Any:
    """One answer line (without its newline) as JSON; ``ProtocolError`` if it is not."""
    try:
        return decode_json(line, limit=MAX_LINE_BYTES)
    except DecodeError as exc:
        raise ProtocolError(f"unexpected answer from chatd: {exc}") from None


def decode_as(obj: Any, cls: type[T]) -> T:
    """Decoded JSON as ``cls``; ``ProtocolError`` if it does not fit."""
    try:
        return structure(obj, cls)
    except DecodeError as exc:
        raise ProtocolError(f"unexpected answer from chatd: {exc}") from None


def answer(line: bytes) -> dict[str, Any]:
    """chatd's ``{"ok": true, ...}`` answer line as decoded JSON; ``RemoteError`` for
    ``{"ok": false, "error": ...}``, ``ProtocolError`` for anything else."""
    obj = decode_json_line(line)
    if not isinstance(obj, dict) or not isinstance(obj.get("ok"), bool):
        raise ProtocolError('unexpected answer from chatd: not an object with a boolean "ok"')
    if not obj["ok"]:
        error = decode_as(obj, ErrorResponse).error
        raise RemoteError(error.code, error.message)
    return obj
