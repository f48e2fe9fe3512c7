"""Counting like events and logging them at most once per ``REPORT_INTERVAL``.

What the peer port refuses comes from whoever can reach it: one log line per refused
connection would let a flood of connections flood the log too.
"""

from __future__ import annotations

import math

import trio

from chat.log import WarningLog

# Refusals and accept failures are counted, and logged at most once per this many seconds.
REPORT_INTERVAL = 5.0


class Tally:
    """Counts events by error, and logs them as ``event`` with a count.

    The first of a burst is logged at once, the rest in one line per interval; the
    reports run in ``nursery``.
    """

    def __init__(self, log: WarningLog, event: str, nursery: trio.Nursery, **fields: str) -> None:
        self.log = log
        self.event = event
        self.nursery = nursery
        self.fields = fields
        self.counts: dict[str, int] = {}
        self._last = -math.inf
        self._pending = False

    def add(self, error: str = "") -> None:
        self.counts[error] = self.counts.get(error, 0) + 1
        if not self._pending:
            self._pending = True
            self.nursery.start_soon(self._report)

    async def _report(self) -> None:
        await trio.sleep_until(max(self._last + REPORT_INTERVAL, trio.current_time()))
        self._last = trio.current_time()
        counts, self.counts, self._pending = self.counts, {}, False
        for error, count in counts.items():
            extra = {"error": error} if error else {}
            self.log.warning(
                self.event, count=count, interval=REPORT_INTERVAL, **self.fields, **extra
            )
