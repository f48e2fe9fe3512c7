"""Log lines as data: the core records them here and returns them as ``Log`` effects.

The core never logs itself (it is pure); the shell writes the lines. Each line carries the
term current when it was recorded.
"""

from __future__ import annotations

from collections.abc import Callable

from chatd.core.effects import Log


class Recorder:
    def __init__(self, term: Callable[[], int]) -> None:
        self._term = term
        self._lines: list[Log] = []

    def _record(self, level: str, event: str, fields: dict[str, object]) -> None:
        self._lines.append(Log(level, event, {**fields, "term": self._term()}))

    def debug(self, event: str, **fields: object) -> None:
        self._record("debug", event, fields)

    def info(self, event: str, **fields: object) -> None:
        self._record("info", event, fields)

    def warning(self, event: str, **fields: object) -> None:
        self._record("warning", event, fields)

    def error(self, event: str, **fields: object) -> None:
        self._record("error", event, fields)

    def drain(self) -> list[Log]:
        """The lines recorded since the last drain, in order."""
        lines, self._lines = self._lines, []
        return lines
