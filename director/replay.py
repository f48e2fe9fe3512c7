"""Which signed requests the director has seen: replay protection, sans-I/O.

A signed request carries its timestamp (unix seconds) and a random nonce inside its MAC
(``chat.auth.director_mac``). ``ReplayGuard.check(timestamp, nonce, now)`` decides, with
``now`` the director's wall clock:

    |now - timestamp| > window       -> "stale": outside the window (or a clock is off)
    nonce remembered                 -> "replayed"
    ``capacity`` nonces remembered   -> "full": refused, nothing forgotten
    otherwise                        -> "fresh": the nonce is remembered until
                                        ``timestamp + window``

A nonce is remembered exactly as long as its request's timestamp is inside the window;
after that the timestamp alone refuses a replay. Memory is bounded by ``capacity``: when
full, the guard refuses new requests rather than forget a nonce early, since a forgotten
nonce is a request that can be replayed. (A wall clock stepped back by more than the window
could let an old request in again; NTP slews the clock rather than stepping it.)
"""

from __future__ import annotations

import heapq
import math
from typing import Literal

from attrs import define, field

Verdict = Literal["fresh", "stale", "replayed", "full"]

# 30 s either way: a request is sent the moment it is signed, and NTP keeps clocks within
# far less; a replay must come within this window, and then the nonce stops it.
DEFAULT_WINDOW = 30.0
# Within one window a group's nodes send a few hundred signed requests (the coordinator's
# 1 s heartbeat, joins): ten thousand is far above that, and about 2 MB at most.
DEFAULT_CAPACITY = 10_000


@define
class ReplayGuard:
    window: float = DEFAULT_WINDOW
    capacity: int = DEFAULT_CAPACITY
    # nonce -> the last moment its request could be accepted; and the same as a heap.
    _until: dict[str, float] = field(factory=dict, init=False)
    _expiries: list[tuple[float, str]] = field(factory=list, init=False)

    def __len__(self) -> int:
        """How many nonces are remembered."""
        return len(self._until)

    def check(self, timestamp: float, nonce: str, now: float) -> Verdict:
        """Whether a request dated ``timestamp`` with ``nonce`` may be served at ``now``;
        a fresh one is remembered. Call only for a request whose MAC is good, so that only
        holders of the secret fill the memory."""
        self.expire(now)
        if abs(now - timestamp) > self.window:
            return "stale"
        if nonce in self._until:
            return "replayed"
        if len(self._until) >= self.capacity:
            return "full"
        until = timestamp + self.window
        self._until[nonce] = until
        heapq.heappush(self._expiries, (until, nonce))
        return "fresh"

    def expire(self, now: float) -> None:
        """Forget the nonces whose requests are past the window at ``now``."""
        while self._expiries and self._expiries[0][0] < now:
            _, nonce = heapq.heappop(self._expiries)
            del self._until[nonce]

    def retry_after(self, now: float) -> int:
        """Whole seconds until the oldest nonce is forgotten (at least 1)."""
        if not self._expiries:
            return 1
        return max(1, math.ceil(self._expiries[0][0] - now))
