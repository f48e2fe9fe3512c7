"""Rate-limited warnings about local clients, so that one abusive client cannot flood the
node's log."""

from __future__ import annotations

from typing import Any

import trio

from chat.log import Logger
from chatd.core.abuse import TokenBucket


class LogLimiter:
    """Warnings about clients, at most ``burst`` at once and ``rate`` a second per event.

    One abusive client can cause a line per connection or request; the node's log must not
    become its megaphone. The next line logged says how many were left out.
    """

    def __init__(self, log: Logger, burst: float = 20, rate: float = 2) -> None:
        self._log = log
        self._burst = burst
        self._rate = rate
        self._buckets: dict[str, TokenBucket] = {}
        self._left_out: dict[str, int] = {}

    def warning(self, event: str, **fields: Any) -> None:
        bucket = self._buckets.setdefault(event, TokenBucket(self._rate, self._burst))
        if not bucket.allow(trio.current_time()):
            self._left_out[event] = self._left_out.get(event, 0) + 1
            return
        if left_out := self._left_out.pop(event, 0):
            fields["left-out"] = left_out
        self._log.warning(event, **fields)
