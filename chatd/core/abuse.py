"""Accounting for misbehaving peers (pure): rate limits, strikes, and quiet refusal logs.

A refusal is logged the first time a peer earns it within ``log_interval``; repeats are
counted and logged as one summary line (``count``) when the interval ends, so a peer that
sends 10,000 bad frames costs a few log lines, not 10,000. Hard refusals (frames that prove
the peer broken or hostile) are strikes: ``strike_limit`` of them within ``window`` and
the link is closed.
"""

from __future__ import annotations

from collections import Counter, deque

from attrs import define, field

from chatd.core.recorder import Recorder


@define
class TokenBucket:
    """``rate`` events per second on average, ``burst`` at once."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float | None = field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self.tokens = self.burst

    def allow(self, now: float) -> bool:
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Refusals:
    def __init__(self, strike_limit: int, window: float, log_interval: float) -> None:
        self.strike_limit = strike_limit
        self.window = window
        self.log_interval = log_interval
        self._suppressed: Counter[tuple[str, str, str, str]] = Counter()
        self._logged: set[tuple[str, str, str, str]] = set()
        self.next_flush = 0.0
        self._strikes: dict[str, deque[float]] = {}

    def note(
        self,
        log: Recorder,
        event: str,
        peer: str,
        kind: str,
        reason: str,
        now: float,
        **extra: object,
    ) -> None:
        """Log a refusal, or count it if this one was logged within the interval."""
        key = (event, peer, kind, reason)
        if key in self._logged:
            self._suppressed[key] += 1
            return
        self._logged.add(key)
        log.warning(event, peer=peer, type=kind, reason=reason, **extra)

    def strike(self, peer: str, now: float) -> bool:
        """Count a hard refusal; True when the peer has earned too many and must go."""
        strikes = self._strikes.setdefault(peer, deque())
        strikes.append(now)
        while strikes and strikes[0] < now - self.window:
            strikes.popleft()
        if len(strikes) >= self.strike_limit:
            strikes.clear()
            return True
        return False

    def forget(self, peer: str) -> None:
        self._strikes.pop(peer, None)

    def flush(self, log: Recorder, now: float) -> None:
        """Once per interval: one summary line per refusal that repeated."""
        if now < self.next_flush:
            return
        self.next_flush = now + self.log_interval
        for (event, peer, kind, reason), count in sorted(self._suppressed.items()):
            log.warning(event, peer=peer, type=kind, reason=reason, count=count, repeated=True)
        self._suppressed.clear()
        self._logged.clear()
