"""chatd's control socket from asyncio (prompt_toolkit's loop): one-shot requests and the
events stream.

Every request opens its own connection (a Unix-socket connect costs well under a
millisecond), so a lost connection never leaves a half-read answer behind. Failures are
``chatctl.client``'s ``ControlError`` family, with the same one-line messages: ``NoDaemon``
before anything was sent (nothing happened), ``ConnectionLost`` or ``Timeout`` after
(the request may or may not have been carried out).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

from attrs import frozen

from chat.wire import (
    LeaveRequest,
    MemberView,
    MessageView,
    NickRequest,
    NickResponse,
    PresenceView,
    Request,
    SendRequest,
    SendResponse,
    Status,
    StatusRequest,
    StatusResponse,
    TaggedMessage,
    TaggedPresence,
    TailEnd,
    TailRequest,
    WhoRequest,
    WhoResponse,
)
from chatctl.errors import (
    ConnectionLost,
    ControlError,
    NoDaemon,
    PermissionDenied,
    ProtocolError,
    Timeout,
)
from chatctl.framing import MAX_LINE_BYTES, answer, decode_as, decode_json_line, request_line

T = TypeVar("T")


@frozen
class Opened:
    """The events stream's first item: the node accepted the request."""


@frozen
class NodeLeft:
    """The events stream's last line: the node left the discussion cleanly."""


Event = Opened | MessageView | PresenceView | NodeLeft


class Control:
    """Requests to the chatd at ``path``; each answer must come within ``timeout`` s."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout

    async def send(self, text: str) -> MessageView:
        return (await self._call(SendRequest(text=text), SendResponse)).message

    async def status(self) -> Status:
        return (await self._call(StatusRequest(), StatusResponse)).status

    async def who(self) -> list[MemberView]:
        return (await self._call(WhoRequest(), WhoResponse)).members

    async def nick(self, name: str) -> str:
        """The name the node now has; an invalid name is a ``bad-request`` refusal."""
        return (await self._call(NickRequest(name=name), NickResponse)).name

    async def leave(self) -> None:
        await self._request(request_line(LeaveRequest()))

    async def events(self, last: int) -> AsyncIterator[Event]:
        """``Opened``, the last ``last`` messages, then each new message and presence event
        as delivered; ends after ``NodeLeft``; ``ConnectionLost`` when the stream is cut
        otherwise."""
        reader, writer = await self._open()
        try:
            request = request_line(TailRequest(follow=True, last=last, events=True))
            await self._answer_of(reader, writer, request)
            yield Opened()
            while True:
                line = await self._readline(reader)
                if line is None:
                    raise ConnectionLost(f"chatd at {self.path} closed the connection")
                obj = decode_json_line(line)
                kind = obj.get("kind") if isinstance(obj, dict) else None
                if kind == "presence":
                    yield decode_as(obj, TaggedPresence).presence
                elif kind is None and isinstance(obj, dict) and "end" in obj:
                    decode_as(obj, TailEnd)
                    yield NodeLeft()
                    return
                else:
                    yield decode_as(obj, TaggedMessage).message
        finally:
            writer.close()

    # -- plumbing --

    async def _call(self, request: Request, cls: type[T]) -> T:
        return decode_as(await self._request(request_line(request)), cls)

    async def _request(self, line: bytes) -> dict[str, Any]:
        reader, writer = await self._open()
        try:
            return await self._answer_of(reader, writer, line)
        finally:
            writer.close()

    async def _answer_of(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes
    ) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(line)
                await writer.drain()
                reply = await self._readline(reader)
        except TimeoutError:
            raise Timeout(
                f"no answer from chatd at {self.path} within {self.timeout:g} s"
            ) from None
        except OSError as exc:  # EPIPE, ECONNRESET while writing
            raise ConnectionLost(
                f"chatd at {self.path} closed the connection ({exc.strerror or exc})"
            ) from None
        if reply is None:
            raise ConnectionLost(f"chatd at {self.path} closed the connection without answering")
        return answer(reply)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.open_unix_connection(str(self.path), limit=MAX_LINE_BYTES)
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise NoDaemon(self.path) from None
        except PermissionError:
            raise PermissionDenied(self.path) from None
        except TimeoutError:
            raise Timeout(f"chatd at {self.path} did not accept the connection") from None
        except OSError as exc:
            raise ControlError(f"cannot connect to {self.path}: {exc.strerror or exc}") from None

    async def _readline(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next line without its newline; None at a clean end of stream."""
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ConnectionLost(
                    f"chatd at {self.path} closed the connection mid-answer"
                ) from None
            return None
        except asyncio.LimitOverrunError:
            raise ProtocolError(f"answer line from chatd over {MAX_LINE_BYTES} bytes") from None
        except OSError as exc:  # ECONNRESET
            raise ConnectionLost(
                f"chatd at {self.path} dropped the connection ({exc.strerror or exc})"
            ) from None
        return line[:-1]
