"""The control socket's line splitting: lines in order, the cap, and the end of the stream."""

from __future__ import annotations

import pytest
import trio

from chat.wire import DecodeError
from chatd.lines import LineReader


class Chunks(trio.abc.ReceiveStream):
    """A stream that hands out the given chunks, then end of stream (b"") for ever."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return self._chunks.pop(0) if self._chunks else b""

    async def aclose(self) -> None:
        pass


async def read_all(reader: LineReader) -> list[bytes]:
    lines = []
    while (line := await reader.next_line()) is not None:
        lines.append(line)
        assert len(lines) < 100, "the reader never reached the end of the stream"
    return lines


async def test_lines_split_across_chunks() -> None:
    reader = LineReader(Chunks(b"ab", b"c\nde", b"f\n\n", b"g\n"), 10)
    assert await read_all(reader) == [b"abc", b"def", b"", b"g"]


async def test_a_last_line_without_newline_is_returned_once() -> None:
    # It used to be returned again on every call: a client that half-closed after
    # '{"op":"send",...}' without a newline had its message sent over and over.
    reader = LineReader(Chunks(b'{"op":"status"}\n{"op":"who"}'), 100)
    assert await read_all(reader) == [b'{"op":"status"}', b'{"op":"who"}']
    assert await reader.next_line() is None


async def test_a_blank_last_line_is_the_end() -> None:
    assert await read_all(LineReader(Chunks(b"a\n  \t"), 10)) == [b"a"]


@pytest.mark.parametrize("chunks", [(b"12345\n",), (b"123", b"45"), (b"1234", b"56\n")])
async def test_a_line_over_the_limit_is_refused(chunks: tuple[bytes, ...]) -> None:
    reader = LineReader(Chunks(b"1234\n", *chunks), 4)
    assert await reader.next_line() == b"1234"  # exactly at the limit
    with pytest.raises(DecodeError, match="over 4 bytes"):
        await reader.next_line()
