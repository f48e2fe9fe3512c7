"""Who coordinates the discussion: the director's only state, sans-I/O.

No trio, no sockets, no clock: every call that depends on time takes ``now`` (seconds on
any monotonic clock). The registry holds at most one coordinator record, plus the highest
term it has ever seen, which survives the record.

Transition rules (``R`` is the record held, ``T`` the highest term seen):

register_coordinator(C, now)
    no R                                     -> accept: R = C
    C.term > R.term                          -> accept: R = C (a newer coordinator)
    C.term == R.term and C.node-id == R's    -> accept: R = C (heartbeat; confirms a
                                                provisional record; addresses may change)
    C.term == R.term, another node-id        -> refuse "term-taken"
    C.term < R.term                          -> refuse "stale-term" (even from R's node:
                                                terms only grow; a late heartbeat loses)
    every accepted call refreshes R and sets T = max(T, C.term).

register_node(N, now) -> JoinAdvice
    R exists, N is not R's node              -> join R
    no R and now < not_before                -> wait: a director that just (re)started
                                                gives a running discussion's coordinator
                                                one heartbeat to find it, rather than let
                                                a newcomer start a second discussion
    R is provisional and N is R's node       -> start again with R.term (a retried
                                                request must not bump the term)
    otherwise (no R, or N is R's confirmed   -> start with term T + 1, and R becomes a
    node restarting)                            provisional record for N at that term, so
                                                the next newcomer joins N instead of
                                                starting a second discussion.

unregister(U)
    R exists with U's node-id and term       -> forget R (T is kept)
    R exists with a term below U's           -> forget R: the last node of the discussion
                                                leaves in a newer term than R's (R is a
                                                predecessor whose hand-over it outlived)
    otherwise                                -> nothing

expire(now)
    R not refreshed within ``ttl`` seconds   -> forget R (T is kept): its node is gone,
                                                or a starter never confirmed. ``ttl=None``
                                                never expires.
"""

from __future__ import annotations

from typing import Literal

from attrs import define, field, frozen

from chat.wire.director import CoordinatorRecord, JoinAdvice, NodeRegistration, Unregistration

RefusalReason = Literal["term-taken", "stale-term"]


@frozen
class Accepted:
    """The record is now the coordinator; ``previous`` is the record it replaced, if any."""

    record: CoordinatorRecord
    previous: CoordinatorRecord | None


@frozen
class Refused:
    """The registration lost to ``current``, the record the director keeps."""

    reason: RefusalReason
    current: CoordinatorRecord


@define
class Registry:
    """The current coordinator, if any; see the module docstring for the rules."""

    ttl: float | None = None
    not_before: float = 0.0
    _record: CoordinatorRecord | None = field(default=None, init=False)
    _provisional: bool = field(default=False, init=False)
    _refreshed_at: float = field(default=0.0, init=False)
    _max_term: int = field(default=0, init=False)

    def coordinator(self) -> CoordinatorRecord | None:
        """The record held, provisional or not (call ``expire`` first to drop a stale one)."""
        return self._record

    @property
    def provisional(self) -> bool:
        """True while the record is a starter that has not registered as coordinator yet."""
        return self._record is not None and self._provisional

    @property
    def max_term(self) -> int:
        return self._max_term

    def current(self, now: float) -> CoordinatorRecord | None:
        """The record held unless ``expire(now)`` would forget it; changes nothing."""
        record = self._record
        if record is None or self.ttl is None or now - self._refreshed_at <= self.ttl:
            return record
        return None

    def expire(self, now: float) -> CoordinatorRecord | None:
        """Forget a record not refreshed within ``ttl``; returns the record forgotten."""
        record = self._record
        if record is None or self.ttl is None or now - self._refreshed_at <= self.ttl:
            return None
        self._record = None
        return record

    def register_coordinator(self, record: CoordinatorRecord, now: float) -> Accepted | Refused:
        self.expire(now)
        current = self._record
        if current is not None:
            if record.term < current.term:
                return Refused("stale-term", current)
            if record.term == current.term and record.node_id != current.node_id:
                return Refused("term-taken", current)
        self._hold(record, provisional=False, now=now)
        return Accepted(record, current)

    def register_node(self, reg: NodeRegistration, now: float) -> JoinAdvice:
        self.expire(now)
        current = self._record
        if current is not None and current.node_id != reg.node_id:
            return JoinAdvice(action="join", coordinator=current)
        if current is not None and self._provisional:
            return JoinAdvice(action="start", term=current.term)
        if current is None and now < self.not_before:
            return JoinAdvice(action="wait")
        term = self._max_term + 1
        provisional = CoordinatorRecord(
            node_id=reg.node_id, address=reg.address, public_address=reg.public_address, term=term
        )
        self._hold(provisional, provisional=True, now=now)
        return JoinAdvice(action="start", term=term)

    def unregister(self, u: Unregistration) -> bool:
        """Forget the record if it is ``u``'s; returns whether it was forgotten."""
        current = self._record
        if current is None or not (
            current.term < u.term or (current.node_id, current.term) == (u.node_id, u.term)
        ):
            return False
        self._record = None
        return True

    def _hold(self, record: CoordinatorRecord, *, provisional: bool, now: float) -> None:
        self._record = record
        self._provisional = provisional
        self._refreshed_at = now
        self._max_term = max(self._max_term, record.term)
