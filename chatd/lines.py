"""Newline-delimited requests from a local client (the control socket, the IRC gateway):
a cap on a line's length and a deadline for a line once started, so that a client can
neither fill the node's memory nor hold a connection open with half a line."""

from __future__ import annotations

import math

import trio

from chat.wire import DecodeError


class LineTimeout(Exception):
    """A request line was started but not finished in time."""


class LineReader:
    """Newline-delimited reads from a stream, with a cap on line length and, once a line has
    started, a deadline for the rest of it."""

    def __init__(
        self, stream: trio.abc.ReceiveStream, limit: int, timeout: float = math.inf
    ) -> None:
        self._stream = stream
        self._limit = limit
        self._timeout = timeout
        self._buffer = bytearray()
        self._deadline = math.inf  # for the partial line in the buffer

    async def next_line(self) -> bytes | None:
        """The next line without its newline; None at end of stream.

        Raises ``DecodeError`` when a line exceeds the limit, ``LineTimeout`` when a line
        is still unfinished ``timeout`` seconds after this call first waited for its rest.
        """
        while True:
            end = self._buffer.find(b"\n")
            if end > self._limit:  # a whole line arrived at once: still too large
                raise DecodeError(f"request line over {self._limit} bytes")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._deadline = math.inf
                return line
            if len(self._buffer) > self._limit:
                raise DecodeError(f"request line over {self._limit} bytes")
            if self._buffer and self._deadline == math.inf:
                # The clock starts when we wait, not when the bytes came: time spent
                # answering the previous request is not the client's.
                self._deadline = trio.current_time() + self._timeout
            with trio.move_on_at(self._deadline if self._buffer else math.inf):
                chunk = await self._stream.receive_some(65536)
                if not chunk:
                    # The last line may lack its newline. Empty the buffer, or every later
                    # call would return that line again (a half-closed client's request).
                    line = bytes(self._buffer)
                    self._buffer.clear()
                    return line if line.strip() else None
                self._buffer += chunk
                continue
            raise LineTimeout(f"request line not finished within {self._timeout:g} s")
