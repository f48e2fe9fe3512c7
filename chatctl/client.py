"""A small synchronous client for chatd's control socket (JSON Lines over a Unix socket).

Every failure is a ``ControlError`` whose ``str()`` is one line fit for the user:

- ``NoDaemon``: the socket file is missing or nobody accepts on it;
- ``PermissionDenied``: the socket (or a directory on its path) is not ours to open;
- ``Timeout``: no (complete) answer within ``timeout`` seconds;
- ``ConnectionLost``: chatd closed the connection before the answer was complete;
- ``ProtocolError``: the answer is not JSON Lines of the expected shape, or a line is too long;
- ``RemoteError``: chatd answered ``{"ok": false, "error": {"code", "message"}}``.

Usage::

    with connect(path) as client:
        client.send("hello")
        for message in client.tail(last=10, follow=True):
            ...
"""

from __future__ import annotations

import socket
import time
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from chat.wire import (
    HistoryRequest,
    HistoryResponse,
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
    RemoteError,
    Timeout,
)
from chatctl.framing import MAX_LINE_BYTES, answer, decode_as, decode_json_line, request_line

__all__ = [
    "MAX_LINE_BYTES",
    "Client",
    "ConnectionLost",
    "ControlError",
    "NoDaemon",
    "PermissionDenied",
    "ProtocolError",
    "RemoteError",
    "Timeout",
    "connect",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
_CHUNK = 1 << 16


def connect(path: Path, timeout: float | None = DEFAULT_TIMEOUT) -> Client:
    """Open a connection to chatd at ``path``; ``timeout`` bounds each request (None: never)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        sock.close()
        raise NoDaemon(path) from None
    except PermissionError:
        sock.close()
        raise PermissionDenied(path) from None
    except TimeoutError:
        sock.close()
        raise Timeout(f"chatd at {path} did not accept the connection in {timeout:g} s") from None
    except OSError as exc:  # e.g. a path longer than sun_path allows
        sock.close()
        raise ControlError(f"cannot connect to {path}: {exc.strerror or exc}") from None
    return Client(sock, path, timeout)


class Client:
    """One connection; requests are answered in turn. A ``tail`` uses up the connection."""

    def __init__(self, sock: socket.socket, path: Path, timeout: float | None) -> None:
        self._sock: socket.socket | None = sock
        self.path = path
        self.timeout = timeout
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf already known to hold no newline

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request(self, req: Request) -> dict[str, Any]:
        """Send ``req`` and return chatd's ``{"ok": true, ...}`` answer as decoded JSON.

        Raises ``RemoteError`` for ``{"ok": false}`` and the other ``ControlError``s for
        transport trouble.
        """
        self._send(req)
        line = self._readline(self._deadline())
        if line is None:
            raise ConnectionLost(f"chatd at {self.path} closed the connection without answering")
        return answer(line)

    def send(self, text: str) -> MessageView:
        """Send one chat message; returns it as the node accepted it."""
        return self._call(SendRequest(text=text), SendResponse).message

    def history(self) -> list[MessageView]:
        """Every message the node holds, in canonical order."""
        return self._call(HistoryRequest(), HistoryResponse).messages

    def status(self) -> Status:
        return self._call(StatusRequest(), StatusResponse).status

    def who(self) -> list[MemberView]:
        return self._call(WhoRequest(), WhoResponse).members

    def nick(self, name: str) -> str:
        """Rename the node; returns the name it now has. An invalid name is a
        ``RemoteError`` with code ``bad-request`` and the reason."""
        return self._call(NickRequest(name=name), NickResponse).name

    def leave(self) -> None:
        """Ask the node to leave the discussion and exit."""
        self.request(LeaveRequest())

    def tail(self, last: int = 10, follow: bool = False) -> Generator[MessageView, None, None]:
        """The last ``last`` delivered messages, then (``follow``) each new one as delivered.

        The request is made at once, so the stream includes every message delivered from
        this call on, however late the caller starts reading. Without ``follow`` the
        stream ends when chatd closes it, and each line must come within the timeout; with
        ``follow`` it blocks until the node leaves (the stream ends: chatd said so) or the
        connection is lost otherwise (``ConnectionLost``), or the caller stops iterating.
        The connection cannot be reused afterwards.
        """
        try:
            self.request(TailRequest(follow=follow, last=last))
        except BaseException:
            self.close()
            raise
        return self._tail_lines(follow)

    def events(
        self, last: int = 10, follow: bool = False
    ) -> Generator[MessageView | PresenceView, None, None]:
        """As ``tail``, with the node's presence events (joined, left, timed-out, rejoined,
        coordinator, renamed) in order among the messages while following."""
        try:
            self.request(TailRequest(follow=follow, last=last, events=True))
        except BaseException:
            self.close()
            raise
        return self._event_lines(follow)

    def _event_lines(self, follow: bool) -> Generator[MessageView | PresenceView, None, None]:
        for obj in self._tail_objects(follow):
            kind = obj.get("kind") if isinstance(obj, dict) else None
            if kind == "presence":
                yield self._decode(obj, TaggedPresence).presence
            elif kind is None:  # an untagged message line, as before events existed
                yield self._decode(obj, MessageView)
            else:
                yield self._decode(obj, TaggedMessage).message

    def _tail_lines(self, follow: bool) -> Generator[MessageView, None, None]:
        for obj in self._tail_objects(follow):
            yield self._decode(obj, MessageView)

    def _tail_objects(self, follow: bool) -> Generator[Any, None, None]:
        try:
            while True:
                line = self._readline(None if follow else self._deadline())
                if line is None:
                    if follow:
                        raise ConnectionLost(f"chatd at {self.path} closed the connection")
                    return
                obj = decode_json_line(line)
                if follow and isinstance(obj, dict) and "end" in obj:
                    self._decode(obj, TailEnd)  # the node left cleanly
                    return
                yield obj
        finally:
            self.close()

    # -- plumbing --

    def _call(self, req: Request, cls: type[T]) -> T:
        return self._decode(self.request(req), cls)

    def _decode(self, obj: Any, cls: type[T]) -> T:
        return decode_as(obj, cls)

    def _deadline(self) -> float | None:
        return None if self.timeout is None else time.monotonic() + self.timeout

    def _live(self) -> socket.socket:
        if self._sock is None:
            raise ControlError("the connection to chatd is closed")
        return self._sock

    def _send(self, req: Request) -> None:
        sock = self._live()
        data = request_line(req)
        sock.settimeout(self.timeout)
        try:
            sock.sendall(data)
        except TimeoutError:
            raise Timeout(f"chatd at {self.path} is not reading requests") from None
        except OSError as exc:  # EPIPE, ECONNRESET
            raise ConnectionLost(
                f"chatd at {self.path} closed the connection ({exc.strerror or exc})"
            ) from None

    def _readline(self, deadline: float | None) -> bytes | None:
        """The next line without its newline; None at a clean end of stream."""
        sock = self._live()
        while True:
            nl = self._buf.find(b"\n", self._scanned)
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                self._scanned = 0
                return line
            self._scanned = len(self._buf)
            if self._scanned > MAX_LINE_BYTES:
                raise ProtocolError(f"answer line from chatd over {MAX_LINE_BYTES} bytes")
            if deadline is None:
                sock.settimeout(None)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout()
                sock.settimeout(remaining)
            try:
                chunk = sock.recv(_CHUNK)
            except TimeoutError:
                raise self._timeout() from None
            except OSError as exc:  # ECONNRESET
                raise ConnectionLost(
                    f"chatd at {self.path} dropped the connection ({exc.strerror or exc})"
                ) from None
            if not chunk:
                if self._buf:
                    raise ConnectionLost(f"chatd at {self.path} closed the connection mid-answer")
                return None
            self._buf += chunk

    def _timeout(self) -> Timeout:
        return Timeout(f"no answer from chatd at {self.path} within {self.timeout:g} s")
