"""Reading the small files chat is given (a group secret, a password), bounded.

A path given by mistake may name a device or a huge file: reading stops one byte past the
limit, so that is a clear error instead of a hang or all of memory.
"""

from __future__ import annotations

from pathlib import Path


class TooLarge(Exception):
    """The file holds more than the limit; ``limit`` says how much that is."""

    def __init__(self, path: str | Path, limit: int) -> None:
        super().__init__(f"{path} is over {limit} bytes")
        self.limit = limit


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The whole file at ``path`` if it holds at most ``limit`` bytes; ``TooLarge`` if it
    holds more, ``OSError`` if it cannot be read."""
    with open(path, "rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(path, limit)
    return data
