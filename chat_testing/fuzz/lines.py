"""The control connection's line reader (``chatd.control.LineReader``): the lines of any
data in any chunking, a line over the limit refused exactly where it is."""

from __future__ import annotations

import random
from dataclasses import dataclass

import trio

from chat.wire import DecodeError
from chat_testing.fuzz.common import short, timed
from chat_testing.fuzz.wire import cap_cases, check_request, request_input
from chatd.control.server import MAX_REQUEST_BYTES
from chatd.lines import LineReader


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
    got, refused = timed(_read_lines, stream)
    assert len(got) <= len(want), f"extra line {short(got[len(want)])} after {len(want)}"
    assert got == want, "lines differ from the data split at newlines"
    if refused is not None:
        assert too_long, f"DecodeError for lines within the limit: {refused}"
    else:
        assert not too_long, "a line over the limit was not refused"
    # The first few lines as requests too (the request decoder has its own run).
    for line in [line for line in got if line.strip()][:3]:
        check_request(line)
    return got


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


def streams_at_cap() -> list[tuple[str, Stream]]:
    return [
        (name, Stream(data + b"\n" + data, (65536,) * 40, MAX_REQUEST_BYTES))
        for name, data in cap_cases(b"op", MAX_REQUEST_BYTES)[:6]
    ]
