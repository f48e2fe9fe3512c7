"""Who is alive: when each peer was last heard, and the heartbeat schedule.

- A member that has not heard the coordinator for ``failure_timeout`` suspects it (and
  stands for election, ``chatd.core.election``); the coordinator drops members silent for
  ``failure_timeout`` (a new member counts from its admission).
- A node whose own timer fires ``failure_timeout`` late was paused: it suspects nobody for
  that gap (no flapping after SIGSTOP/SIGCONT); fencing then brings it up to date.
- Heartbeats go every ``heartbeat_interval`` to the coordinator's links (failure
  detection); every ``repair_interval`` to every link (they carry the anti-entropy digest).
"""

from __future__ import annotations

from collections.abc import Iterable

from chatd.config import Config
from chatd.core.recorder import Recorder


class Liveness:
    def __init__(self, config: Config, log: Recorder) -> None:
        self.config = config
        self.log = log
        self.last_heard: dict[str, float] = {}
        self.coordinator_since = 0.0  # when this node began to follow its coordinator
        self._admitted: dict[str, float] = {}  # as coordinator: member -> admitted at
        self._last_tick: float | None = None
        self.next_heartbeat = 0.0
        self._next_gossip = 0.0

    def heard(self, peer: str, now: float) -> None:
        self.last_heard[peer] = now

    def look(self, now: float) -> None:
        """The timer fired: forgive the silence of a pause of our own."""
        if self._last_tick is None:
            self._forgive(now)  # nobody can be judged before our first look
        elif now - self._last_tick > self.config.failure_timeout:
            # We were not running (SIGSTOP, a stalled machine): the silence is ours.
            self.log.warning("node.paused", seconds=round(now - self._last_tick, 3))
            self._forgive(now)
        self._last_tick = now

    def _forgive(self, now: float) -> None:
        for peer in self.last_heard:
            self.last_heard[peer] = now
        self.coordinator_since = now
        self._admitted = {member: now for member in self._admitted}

    def beat(self, now: float) -> tuple[bool, bool]:
        """(whether a heartbeat is due, whether it goes to every link)."""
        if now < self.next_heartbeat:
            return False, False
        self.next_heartbeat = now + self.config.heartbeat_interval
        gossip = now >= self._next_gossip
        if gossip:
            self._next_gossip = now + self.config.repair_interval
        return True, gossip

    def silent(self, coordinator: str, now: float) -> bool:
        """Whether ``coordinator`` has not been heard since it became ours, too long."""
        heard = max(self.last_heard.get(coordinator, 0.0), self.coordinator_since)
        return now - heard > self.config.failure_timeout

    def admit(self, member: str, now: float) -> None:
        self._admitted[member] = now

    def admit_all(self, members: Iterable[str], now: float) -> None:
        """A new coordinator gives every member a full ``failure_timeout`` from now."""
        self._admitted = {member: now for member in members}

    def expired(self, members: Iterable[str], now: float) -> list[str]:
        """Of ``members``, those silent for ``failure_timeout``; forgotten here."""
        timeout = self.config.failure_timeout
        dead = [
            m
            for m in members
            if now - max(self.last_heard.get(m, 0.0), self._admitted.get(m, now)) > timeout
        ]
        for member in dead:
            self._admitted.pop(member, None)
        return dead
