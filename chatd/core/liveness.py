"""Who is alive: when each peer was last heard, and the heartbeat and digest schedule.

- Any frame from a peer counts as hearing it. A member that has not heard the coordinator
  for ``failure_timeout`` suspects it (and stands for election, ``chatd.core.election``);
  the coordinator drops members silent for ``member_timeout`` (a new member counts from
  its admission).
- A node whose own timer fires ``failure_timeout`` late was paused: it suspects nobody for
  that gap (no flapping after SIGSTOP/SIGCONT) and tells every link its term and digest at
  once, so fencing brings it up to date.
- The coordinator sends every link a heartbeat each ``heartbeat_interval``, and a member
  the coordinator one each ``member_heartbeat_interval``; either is skipped when another
  frame went to that peer within half the interval (piggy-backed on traffic).
- Digests (term and history hash, in a heartbeat) go to the overlay neighbours and the
  coordinator at most every ``repair_interval``, and only to a peer whose last word, or
  our last word to it, differs from ours now: an idle discussion sends none.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from chatd.config import Config
from chatd.core.recorder import Recorder

Digest = tuple[int, str]  # (term, history hash) as a heartbeat carries them


class Liveness:
    def __init__(self, config: Config, log: Recorder) -> None:
        self.config = config
        self.log = log
        self.last_heard: dict[str, float] = {}
        self.last_sent: dict[str, float] = {}
        self.coordinator_since = 0.0  # when this node began to follow its coordinator
        self._admitted: dict[str, float] = {}  # as coordinator: member -> admitted at
        self._last_tick: float | None = None
        self.last_beat = float("-inf")
        self.next_digest = 0.0
        self.digests_pending = True  # some peer may differ from us: wake for digests
        self._told: dict[str, Digest] = {}  # the digest each peer was last sent
        self._said: dict[str, Digest] = {}  # the digest each peer last sent us

    def heard(self, peer: str, now: float) -> None:
        self.last_heard[peer] = now

    def sent(self, peer: str, now: float, digest: Digest | None) -> None:
        self.last_sent[peer] = now
        if digest is not None:
            self._told[peer] = digest

    def said(self, peer: str, digest: Digest, mine: Digest, now: float) -> None:
        """``peer``'s heartbeat carried ``digest``."""
        self._said[peer] = digest
        if digest != mine:
            self.changed(now)

    def changed(self, now: float) -> None:
        """Our digest changed or a peer's differs: digests are due, one repair_interval
        from now at the earliest, so frames in flight land before a digest shows a gap."""
        if not self.digests_pending:
            self.digests_pending = True
            self.next_digest = max(self.next_digest, now + self.config.repair_interval)

    def forget(self, peer: str) -> None:
        """A link went down: a new one starts with a heartbeat each way."""
        self.last_sent.pop(peer, None)
        self._told.pop(peer, None)
        self._said.pop(peer, None)

    def look(self, now: float, due: float) -> bool:
        """The timer fired for ``due``: forgive the silence of a pause of our own; whether
        we were paused."""
        first = self._last_tick is None
        self._last_tick = now
        if first:
            self._forgive(now)  # nobody can be judged before our first look
        elif now - due > self.config.failure_timeout:
            # We were not running (SIGSTOP, a stalled machine): the silence is ours.
            self.log.warning("node.paused", seconds=round(now - due, 3))
            self._forgive(now)
            return True
        return False

    def _forgive(self, now: float) -> None:
        for peer in self.last_heard:
            self.last_heard[peer] = now
        self.coordinator_since = now
        self._admitted = {member: now for member in self._admitted}
        self.digests_pending = True

    # The schedule ------------------------------------------------------------------------

    def beat_interval(self, coordinator: bool) -> float:
        config = self.config
        return config.heartbeat_interval if coordinator else config.member_heartbeat_interval

    def next_deadline(self, coordinator: bool) -> float:
        # A node that just took a coordinator (or became one) beats from then on: its
        # timer is never set in the past, so a late tick means a pause of ours.
        deadline = max(self.last_beat + self.beat_interval(coordinator), self.coordinator_since)
        if self.digests_pending:
            deadline = min(deadline, self.next_digest)
        return deadline

    def beat_due(self, now: float, coordinator: bool) -> bool:
        """Whether a heartbeat round is due (then it is taken)."""
        if now < self.last_beat + self.beat_interval(coordinator):
            return False
        self.last_beat = now
        return True

    def digests_due(self, now: float) -> bool:
        """Whether a digest round is due (then it is taken)."""
        if not self.digests_pending or now < self.next_digest:
            return False
        self.next_digest = now + self.config.repair_interval
        self.digests_pending = False
        return True

    def targets(
        self,
        now: float,
        coordinating: bool,
        coordinator: str | None,
        peers: Collection[str],
        neighbours: Iterable[str],
        *,
        beat: bool,
        digest: Digest | None,
        everyone: bool,
    ) -> set[str]:
        """Who gets a heartbeat now: on a beat, the coordinator's links (or a member's
        coordinator) that no other frame went to within half the interval; on a digest
        round (``digest``: ours), the neighbours and coordinator that differ from us;
        after a pause of ours (``everyone``), every link."""
        out: set[str] = set(peers) if everyone else set()
        ours = [coordinator] if coordinator is not None and coordinator in peers else []
        if beat:
            half = self.beat_interval(coordinating) / 2
            never = float("-inf")
            beaten = peers if coordinating else ours
            out.update(p for p in beaten if now - self.last_sent.get(p, never) >= half)
        if digest is not None:
            near = {*ours, *(p for p in neighbours if p in peers)}
            out.update(p for p in near if self._differs(p, digest))
        return out

    def _differs(self, peer: str, mine: Digest) -> bool:
        """Whether ``peer`` should hear our digest; keeps digests pending while it does."""
        stale = self._told.get(peer) != mine or self._said.get(peer) != mine
        if stale:
            self.digests_pending = True
        return stale

    def idle(self, peer: str, now: float, linger: float) -> bool:
        """Whether no frame went either way on ``peer``'s link for ``linger``."""
        never = float("-inf")
        return (
            now - self.last_sent.get(peer, never) >= linger
            and now - self.last_heard.get(peer, never) >= linger
        )

    # Failure detection -------------------------------------------------------------------

    def suspect_at(self, coordinator: str) -> float:
        """When ``coordinator``, silent since, is taken for dead."""
        heard = max(self.last_heard.get(coordinator, 0.0), self.coordinator_since)
        return heard + self.config.failure_timeout

    def silent(self, coordinator: str, now: float) -> bool:
        """Whether ``coordinator`` has not been heard since it became ours, too long."""
        return now >= self.suspect_at(coordinator)

    def admit(self, member: str, now: float) -> None:
        self._admitted[member] = now

    def admit_all(self, members: Iterable[str], now: float) -> None:
        """A new coordinator gives every member a full ``member_timeout`` from now."""
        self._admitted = {member: now for member in members}

    def expired(self, members: Iterable[str], now: float) -> list[str]:
        """Of ``members``, those silent for ``member_timeout``; forgotten here."""
        timeout = self.config.member_timeout
        dead = [
            m
            for m in members
            if now - max(self.last_heard.get(m, 0.0), self._admitted.get(m, now)) > timeout
        ]
        for member in dead:
            self._admitted.pop(member, None)
        return dead
