"""Keeping the node registered with the director: asking where to join until it is in a
discussion (and again when it drops out), registering as coordinator, unregistering when
the discussion ends, and telling a director that is down from one that refuses this
node's proof (which stops a node that never joined).

The director's answer also says whether it could dial this node back at its advertised
address (``reachable``) and where it saw the node come from (``observed_address``): the
node takes the first into its member record (``Node.reachability``) before it starts or
joins. A reachable node the director sends to a coordinator it cannot dial (refused,
timed out, no route), on two joins in a row to the same coordinator and term (a
dial-out-only node that started the discussion alone, issue 13), starts the discussion
above that term: the director takes the newer term, and the old coordinator, refused at
its next registration, follows and joins.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Protocol

import trio
from attrs import frozen

from chat.exits import EXIT_CLOCK_SKEW, EXIT_SECRET_REFUSED, Fatal
from chat.wire import CoordinatorRecord, JoinAdvice, NodeRegistration, Unregistration
from chatd.channel import NO_ROUTE, REFUSED, TIMED_OUT
from chatd.config import Config

if TYPE_CHECKING:
    from chatd.runtime import Runtime


# Joins in a row that time out with no link to the same coordinator before a reachable
# node takes over (one could be a coordinator that just died, its members electing).
UNLINKED_JOINS_TO_TAKE_OVER = 2
# Dial failures that say the coordinator cannot be reached (not that it refused us).
UNDIALABLE = frozenset({REFUSED, TIMED_OUT, NO_ROUTE})


class DirectorApi(Protocol):
    """What a node needs of the director (HTTP in production, in-memory in tests)."""

    async def register_node(self, registration: NodeRegistration) -> JoinAdvice: ...

    async def register_coordinator(self, record: CoordinatorRecord) -> CoordinatorRecord | None:
        """None when accepted; else the coordinator the director holds instead."""

    async def unregister(self, unregistration: Unregistration) -> bool: ...


@frozen
class ProofRefusal:
    """What a refusal of the node's proof by the director means for the operator."""

    event: str  # logged at error level
    meaning: str  # said before the director's own words, in status and logs
    exit_code: int  # when it stops a node that never joined
    hint: str


# The director's error codes (director.app) that say this node is configured wrong rather
# than that the director is down: retrying will not help.
PROOF_REFUSALS = {
    code: refusal
    for codes, refusal in (
        (
            ("bad-proof", "missing-proof"),
            ProofRefusal(
                "director.refused_secret",
                "the director refuses this node's group secret",
                EXIT_SECRET_REFUSED,
                "is the group's secret the first line of --secret-file?",
            ),
        ),
        (
            ("clock-skew",),
            ProofRefusal(
                "director.clock_skew",
                "the director refuses this node's clock",
                EXIT_CLOCK_SKEW,
                "set both hosts' clocks by NTP",
            ),
        ),
    )
    for code in codes
}


def proof_refusal(exc: BaseException) -> ProofRefusal | None:
    code = getattr(exc, "code", None)
    return PROOF_REFUSALS.get(code) if isinstance(code, str) else None


class Registration:
    def __init__(
        self,
        runtime: Runtime,
        director: DirectorApi,
        director_errors: tuple[type[Exception], ...],
    ) -> None:
        self.runtime = runtime
        self.config: Config = runtime.config
        self.director = director
        self.director_errors = director_errors
        self._retryable: tuple[type[Exception], ...] = (*director_errors, trio.TooSlowError)
        self.director_error: str | None = None  # shown by status; None while all is well
        # Proof refusals in a row while never joined: (first one's time, how many).
        self._refused: tuple[float, int] | None = None
        self.lock = trio.Lock()  # one director registration at a time
        self.observed_address = ""  # where the director saw this node come from
        # Joins that timed out without a link to the coordinator: ((node-id, term), count).
        self._unlinked: tuple[tuple[str, int], int] | None = None

    async def stay_joined(self) -> None:
        """Keep the node in a discussion: join at start; and when the coordinator dropped it
        (it was paused or cut off) and does not take it back within join_timeout (it died
        meanwhile, or will not), ask the director where to go again."""
        while True:
            await self._join()
            await self.runtime.out.wait()
            with trio.move_on_after(self.config.join_timeout):
                await self.runtime.joined.wait()
            if not self.runtime.node.ready:
                coordinator = self.runtime.node.snapshot().coordinator
                self.runtime.log.warning("join.lost", coordinator=coordinator)

    async def _join(self) -> None:
        """Ask the director where to go until this node is in a discussion."""
        me = self.runtime.node.me
        registration = NodeRegistration(me.node_id, me.address, me.public_address)
        backoff = self.config.dial_backoff_min
        while not self.runtime.node.ready:
            try:
                advice = await self.director.register_node(registration)
            except self.director_errors as exc:
                self._director_down(exc)
                self._stop_if_refused(exc)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, self.config.director_interval)
                continue
            self._director_up()
            self._refused = None
            self._learn_reachability(advice)
            if advice.action == "wait":
                self.runtime.log.info("join.waiting", reason="the director has just started")
                await trio.sleep(self.config.director_interval / 2)
            elif advice.action == "start":
                self.runtime.feed(
                    "start",
                    partial(self.runtime.node.start_discussion, advice.term, self.runtime.now()),
                )
            elif advice.coordinator is not None:
                self.runtime.feed(
                    "join", partial(self.runtime.node.join, advice.coordinator, self.runtime.now())
                )
                with trio.move_on_after(self.config.join_timeout):
                    await self.runtime.joined.wait()
                if not self.runtime.node.ready:
                    self.runtime.log.warning("join.timeout", coordinator=advice.coordinator.node_id)
                    self._take_over_if_unreachable(advice)

    def _learn_reachability(self, advice: JoinAdvice) -> None:
        if advice.observed_address and advice.observed_address != self.observed_address:
            self.observed_address = advice.observed_address
        me = self.runtime.node.me
        if (advice.reachable, advice.observed_address) != (me.reachable, me.observed_address):
            if not advice.reachable:
                self.runtime.log.warning(
                    "node.dial_out_only",
                    advertised=self.runtime.node.me.public_address,
                    observed=advice.observed_address,
                )
            reachable, observed = advice.reachable, advice.observed_address
            self.runtime.feed(
                "reachability",
                lambda: self.runtime.node.reachability(reachable, observed, self.runtime.now()),
            )

    def _take_over_if_unreachable(self, advice: JoinAdvice) -> None:
        """A reachable node that could not even link to the coordinator, twice, where the
        director found the coordinator dial-out-only (behind NAT, alone or with its home):
        this node starts the discussion above its term and the director deposes it. Two
        reachable nodes that merely cannot reach each other (a partition) never do this,
        so they cannot take the role from each other back and forth."""
        node, coordinator = self.runtime.node, advice.coordinator
        assert coordinator is not None
        cause = self.runtime.peer_links.dial_failures.get(coordinator.node_id)
        if not node.me.reachable or advice.coordinator_reachable or cause not in UNDIALABLE:
            self._unlinked = None
            return
        key = (coordinator.node_id, coordinator.term)
        count = self._unlinked[1] + 1 if self._unlinked and self._unlinked[0] == key else 1
        self._unlinked = (key, count)
        if count < UNLINKED_JOINS_TO_TAKE_OVER:
            return
        self._unlinked = None
        self.runtime.log.warning(
            "join.taking_over", coordinator=coordinator.node_id, reason="cannot link to it"
        )
        term = coordinator.term + 1
        self.runtime.feed("start", partial(node.start_discussion, term, self.runtime.now()))

    async def register(self, record: CoordinatorRecord) -> None:
        if self.lock.locked():
            return  # one in flight already; the timer sends the next
        async with self.lock:
            try:
                with trio.fail_after(self.config.director_timeout):
                    holder = await self.director.register_coordinator(record)
                self._director_up()
                if holder is not None:
                    held = holder
                    self.runtime.feed(
                        "director.refused",
                        lambda: self.runtime.node.director_refused(held, self.runtime.now()),
                    )
            except self._retryable as exc:
                self._director_down(exc)

    async def unregister(self, term: int) -> None:
        try:
            with trio.fail_after(self.config.director_timeout):
                await self.director.unregister(Unregistration(self.runtime.node.node_id, term))
        except self._retryable as exc:
            self._director_down(exc)

    def _director_down(self, exc: BaseException) -> None:
        """Note (in ``status``) and log a failed director call, once per distinct error; a
        refused proof at error level, under an event and words of its own."""
        error = str(exc) or "timed out"
        refusal = proof_refusal(exc)
        if refusal is not None:
            error = f"{refusal.meaning}: {error}"
        if self.director_error != error:
            if refusal is None:
                self.runtime.log.warning("director.failed", error=error)
            else:
                self.runtime.log.error(refusal.event, error=error, hint=refusal.hint)
        self.director_error = error

    def _stop_if_refused(self, exc: BaseException) -> None:
        """Raise ``Fatal`` when the director has refused the proof of a node that never
        joined on every attempt for ``director_refusal_span`` (and at least
        ``director_refusals_to_stop`` times); any other outcome starts the count again."""
        refusal = proof_refusal(exc)
        if refusal is None or self.runtime.node.has_joined:
            self._refused = None
            return
        now = self.runtime.now()
        since, count = self._refused or (now, 0)
        self._refused = (since, count + 1)
        config = self.config
        if (
            count + 1 < config.director_refusals_to_stop
            or now - since < config.director_refusal_span
        ):
            return
        message = (
            f"{refusal.meaning}: {exc} ({count + 1} times in {now - since:.1f} s; {refusal.hint})"
        )
        self.runtime.log.error("node.gave_up", reason=message, exit_code=refusal.exit_code)
        raise Fatal(refusal.exit_code, message)

    def _director_up(self) -> None:
        if self.director_error is not None:
            self.runtime.log.info("director.recovered")
        self.director_error = None
