"""What the node reports about itself: log lines as data, and running totals.

The core never logs (it is pure): it records lines here and the node returns them as
``Log`` effects for the shell to write. Each line carries the term current when it was
recorded. The totals are cheap counters for ``status`` and benchmarks (no per-message log
lines).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from chatd.core.effects import Log


class Recorder:
    def __init__(self, term: Callable[[], int]) -> None:
        self._term = term
        self._lines: list[Log] = []
        self.counters: Counter[str] = Counter()

    def _record(self, level: str, event: str, fields: dict[str, object]) -> None:
        self._lines.append(Log(level, event, {"term": self._term(), **fields}))

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
