"""The trio shell around the core ``Node``: it feeds events in and carries effects out.

Every event handler is synchronous, so each core transition runs without interleaving.
Effects never wait: frames go into per-peer queues, deliveries into per-subscriber queues,
director calls into background tasks. Dialing is reconciled with what the core wants after
every transition.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, Protocol, overload

import trio
from attrs import evolve, frozen

from chat.auth import Keyring
from chat.exits import EXIT_CLOCK_SKEW, EXIT_SECRET_REFUSED, Fatal
from chat.wire import (
    CoordinatorRecord,
    Frame,
    Hello,
    JoinAdvice,
    Message,
    NodeRegistration,
    Unregistration,
    encode_frame,
)
from chat.wire.bounds import MAX_MEMBERS
from chatd.config import Config
from chatd.core.node import (
    Announce,
    Deliver,
    Dial,
    Disconnect,
    Effect,
    Log,
    Node,
    RegisterCoordinator,
    Role,
    Send,
    Undial,
    UnregisterCoordinator,
)
from chatd.core.presence import Presence
from chatd.peers import HandshakeFailed, PeerLink, handshake, hello_for
from chatd.transport import Channel, ChannelClosed, ConnectError, Transport


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


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Runtime:
    def __init__(
        self,
        node: Node,
        transport: Transport,
        director: DirectorApi,
        director_errors: tuple[type[Exception], ...],
        keyring: Keyring | None,
        config: Config,
        rng: random.Random,
        log: Any,
        wallclock: Callable[[], str] = utc_timestamp,
    ) -> None:
        self.node = node
        self._log = log
        self.transport = transport
        self.director = director
        self.director_errors = director_errors
        self._retryable: tuple[type[Exception], ...] = (*director_errors, trio.TooSlowError)
        # The group secrets (None: --insecure); replaced by ``reload_keyring`` on SIGHUP.
        self.keyring = keyring
        self.config = config
        self.rng = rng
        self.wallclock = wallclock
        self.links: dict[str, PeerLink] = {}
        self.director_error: str | None = None
        # Proof refusals in a row while never joined: (first one's time, how many).
        self._refused: tuple[float, int] | None = None
        self._dialers: dict[str, trio.CancelScope] = {}
        self._wanted: dict[str, str] = {}  # peer -> address: what the core asked to dial
        # Each subscriber's queue, its on_drop, and whether it takes presence events too.
        self._subscribers: dict[
            trio.MemorySendChannel[Message | Presence], tuple[Callable[[], None], bool]
        ] = {}
        # node-id -> when (trio time) this node last delivered a message from it (``who``).
        self.last_delivered: dict[str, float] = {}
        self._joined = trio.Event()
        self._out = trio.Event()  # set when a node that was in a discussion drops out of it
        self._leave_requested = trio.Event()
        self._links_gone = trio.Event()
        self._register_lock = trio.Lock()  # one director registration at a time
        self._nursery: trio.Nursery | None = None
        # Benchmark hook (``chatd --bench-trace``): called with every delivered message.
        self.on_deliver: Callable[[Message], None] | None = None

    # Effects -----------------------------------------------------------------------------

    def apply(self, effects: list[Effect]) -> None:
        encoded: dict[int, bytes] = {}
        for effect in effects:
            match effect:
                case Send(peer, frame):
                    link = self.links.get(peer)
                    if link is not None:
                        data = encoded.get(id(frame))
                        if data is None:
                            data = encoded[id(frame)] = encode_frame(frame)
                        link.send_nowait(data)
                case Deliver(message):
                    if self.node.ready:  # not the history a joining node is handed
                        self.last_delivered[message.node_id] = self.now()
                    self._publish(message)
                case Announce(presence):
                    self._forget_departed()
                    self._publish(evolve(presence, at=self.wallclock()))
                case Disconnect(peer, reason):
                    if (link := self.links.get(peer)) is not None:
                        link.close(reason)
                case RegisterCoordinator(record):
                    self._spawn(self._register, record)
                case UnregisterCoordinator(term):
                    self._spawn(self._unregister, term)
                case Dial(peer, address):
                    self._wanted[peer] = address
                case Undial(peer):
                    self._wanted.pop(peer, None)
                case Log(level, event, fields):
                    getattr(self._log, level)(event, **fields)
        if self.node.ready:
            self._joined.set()
            if self._out.is_set():
                self._out = trio.Event()
        elif self.node.role is Role.JOINING and self.node.has_joined and not self._out.is_set():
            self._joined = trio.Event()
            self._out.set()
        if self.node.role is not Role.LEAVING:
            self._reconcile_dials()

    def feed(self, event: str, transition: Callable[[], list[Effect]], **context: Any) -> bool:
        """Run one core transition and carry out its effects.

        Bad input is the core's to refuse; an exception here is a bug of ours, and it must
        cost that one event, never the node: logged at error with a traceback, False.
        """
        try:
            self.apply(transition())
        except Exception:
            self.log.exception("core.failed", core_event=event, **context)
            return False
        return True

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._nursery is None:
            return
        with contextlib.suppress(RuntimeError):  # the node is stopping: no new tasks
            self._nursery.start_soon(fn, *args)

    def _forget_departed(self) -> None:
        """Keep ``last_delivered`` to about the members (membership just changed)."""
        if len(self.last_delivered) > 2 * MAX_MEMBERS:
            members = {m.node_id for m in self.node.snapshot().members}
            self.last_delivered = {n: t for n, t in self.last_delivered.items() if n in members}

    def _publish(self, item: Message | Presence) -> None:
        if self.on_deliver is not None and isinstance(item, Message):
            self.on_deliver(item)
        for subscriber, (on_drop, presence) in list(self._subscribers.items()):
            if isinstance(item, Presence) and not presence:
                continue
            try:
                subscriber.send_nowait(item)
            except trio.WouldBlock:
                del self._subscribers[subscriber]
                subscriber.close()
                self.log.warning("tail.dropped", reason="the client reads too slowly")
                on_drop()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                del self._subscribers[subscriber]  # the client has gone

    @overload
    def subscribe(
        self, on_drop: Callable[[], None] = ..., presence: Literal[False] = False
    ) -> trio.MemoryReceiveChannel[Message]: ...

    @overload
    def subscribe(
        self, on_drop: Callable[[], None] = ..., *, presence: bool
    ) -> trio.MemoryReceiveChannel[Message | Presence]: ...

    def subscribe(
        self, on_drop: Callable[[], None] = lambda: None, presence: bool = False
    ) -> trio.MemoryReceiveChannel[Message] | trio.MemoryReceiveChannel[Message | Presence]:
        """A stream of every message delivered from now on, and with ``presence`` every
        presence event too (chatd.core.presence), in the order the node saw them.

        One that falls ``tail_queue_messages`` behind is closed and ``on_drop`` called: its
        reader may be blocked writing to a client that stopped reading, and must be cut off
        rather than left to drain a backlog the client no longer wants.
        """
        send, receive = trio.open_memory_channel[Message | Presence](
            self.config.tail_queue_messages
        )
        self._subscribers[send] = (on_drop, presence)
        return receive

    @property
    def log(self) -> Any:
        """The shell's logger with the core's current term bound."""
        return self._log.bind(term=self.node.term)

    def now(self) -> float:
        return trio.current_time()

    # Local requests ------------------------------------------------------------------------

    def send_text(self, text: str) -> Message:
        message, effects = self.node.send_text(text, self.wallclock(), self.now())
        self.apply(effects)
        return message

    def rename(self, name: str) -> None:
        """Take ``name`` (raises ``NodeError`` if invalid or too frequent)."""
        self.apply(self.node.rename(name, self.now()))

    def request_leave(self) -> None:
        self._leave_requested.set()

    # Tasks --------------------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve peers, join the discussion, and run until asked to leave; then leave.

        ``task_status.started()`` once the peer listener is bound. Returns after the
        node has told its peers and the director, with everything closed.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            nursery.start_soon(self._run_timers)
            nursery.start_soon(self._stay_joined)
            await self._leave_requested.wait()
            await self._leave()
            nursery.cancel_scope.cancel()

    async def serve_peers(self, channel: Channel) -> None:
        """Handle one incoming connection: handshake, then the link."""
        try:
            hello = await self._handshake(channel, expected=None)
        except (HandshakeFailed, ChannelClosed) as exc:
            self.log.warning("peer.refused", remote=channel.remote, reason=str(exc))
            return
        channel.authenticated()
        await self._run_link(channel, hello)

    async def _handshake(self, channel: Channel, expected: str | None) -> Hello:
        hello = hello_for(
            self.node.me, self.node.term, self.node.identity.public_key, self.keyring is not None
        )
        # An accepted channel's deadline was set at the TCP accept, so the websocket
        # upgrade and hello/auth share one handshake_timeout (see WebSocketTransport.serve).
        deadline = min(channel.deadline, self.now() + self.config.handshake_timeout)
        try:
            with trio.fail_at(deadline):
                return await handshake(channel, self.node.identity, hello, self.keyring, expected)
        except trio.TooSlowError:
            raise HandshakeFailed("handshake timed out") from None

    async def _run_link(self, channel: Channel, hello: Hello) -> None:
        peer = hello.node_id
        link = PeerLink(channel, hello, self.config.peer_queue_frames)
        if (old := self.links.get(peer)) is not None:
            old.close("replaced by a newer connection")
        self.links[peer] = link
        self._links_gone = trio.Event()
        self.feed("peer.connected", lambda: self.node.peer_connected(hello, self.now()), peer=peer)

        def on_frame(frame: Frame) -> None:
            received = lambda: self.node.frame_received(peer, frame, self.now())  # noqa: E731
            if not self.feed("frame", received, peer=peer, type=frame.TYPE):
                link.close("a frame from this peer could not be handled")

        def on_bad_frame(reason: str) -> None:
            # Logged once per peer and interval, then summed up (chatd.core.abuse).
            self.feed(
                "frame.malformed",
                lambda: self.node.frame_malformed(peer, reason, self.now()),
                peer=peer,
            )

        reason = "cancelled"
        try:
            reason = await link.run(on_frame, on_bad_frame)
        finally:
            if self.links.get(peer) is link:
                del self.links[peer]
                self.feed(
                    "peer.disconnected",
                    lambda: self.node.peer_disconnected(peer, self.now()),
                    peer=peer,
                )
            if not self.links:
                self._links_gone.set()
            self.log.info("peer.closed", peer=peer, reason=reason)

    def _reconcile_dials(self) -> None:
        wanted = self._wanted
        for peer, address in wanted.items():
            if peer not in self.links and peer not in self._dialers:
                scope = trio.CancelScope()
                self._dialers[peer] = scope
                self._spawn(self._dial, peer, address, scope)
        # A link that is up stays up (frames may be in flight on it); it closes when the
        # peer leaves or is dropped. Only attempts still dialing are called off.
        for peer in [p for p in self._dialers if p not in wanted and p not in self.links]:
            self._dialers.pop(peer).cancel()

    async def _dial(self, peer: str, address: str, scope: trio.CancelScope) -> None:
        """Keep a link to ``peer`` open while the core wants it, reconnecting with backoff."""
        backoff = self.config.dial_backoff_min
        with scope:
            while True:
                try:
                    async with self.transport.open_channel(address, peer) as channel:
                        hello = await self._handshake(channel, expected=peer)
                        channel.authenticated()
                        backoff = self.config.dial_backoff_min
                        await self._run_link(channel, hello)
                except (ConnectError, HandshakeFailed, ChannelClosed) as exc:
                    self.log.warning(
                        "peer.dial_failed", peer=peer, address=address, reason=str(exc)
                    )
                await trio.sleep(backoff * (0.5 + self.rng.random()))
                backoff = min(backoff * 2, self.config.dial_backoff_max)
                if peer not in self._wanted:
                    break
                address = self._wanted[peer]
        if self._dialers.get(peer) is scope:
            del self._dialers[peer]

    async def _run_timers(self) -> None:
        while True:
            await trio.sleep_until(self.node.next_deadline())
            if not self.feed("tick", lambda: self.node.tick(self.now())):
                # The deadline may not have moved: do not spin on a failing timer.
                await trio.sleep(self.config.heartbeat_interval)

    async def _stay_joined(self) -> None:
        """Keep the node in a discussion: join at start; and when the coordinator dropped it
        (it was paused or cut off) and does not take it back within join_timeout (it died
        meanwhile, or will not), ask the director where to go again."""
        while True:
            await self._join()
            await self._out.wait()
            with trio.move_on_after(self.config.join_timeout):
                await self._joined.wait()
            if not self.node.ready:
                self.log.warning("join.lost", coordinator=self.node.snapshot().coordinator)

    async def _join(self) -> None:
        """Ask the director where to go until this node is in a discussion."""
        me = self.node.me
        registration = NodeRegistration(me.node_id, me.address, me.public_address)
        backoff = self.config.dial_backoff_min
        while not self.node.ready:
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
            if advice.action == "wait":
                self.log.info("join.waiting", reason="the director has just started")
                await trio.sleep(self.config.director_interval / 2)
            elif advice.action == "start":
                self.feed("start", partial(self.node.start_discussion, advice.term, self.now()))
            elif advice.coordinator is not None:
                self.feed("join", partial(self.node.join, advice.coordinator, self.now()))
                with trio.move_on_after(self.config.join_timeout):
                    await self._joined.wait()
                if not self.node.ready:
                    self.log.warning("join.timeout", coordinator=advice.coordinator.node_id)

    async def _register(self, record: CoordinatorRecord) -> None:
        if self._register_lock.locked():
            return  # one in flight already; the timer sends the next
        async with self._register_lock:
            try:
                with trio.fail_after(self.config.director_timeout):
                    holder = await self.director.register_coordinator(record)
                self._director_up()
                if holder is not None:
                    held = holder
                    self.feed(
                        "director.refused", lambda: self.node.director_refused(held, self.now())
                    )
            except self._retryable as exc:
                self._director_down(exc)

    async def _unregister(self, term: int) -> None:
        try:
            with trio.fail_after(self.config.director_timeout):
                await self.director.unregister(Unregistration(self.node.node_id, term))
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
                self.log.warning("director.failed", error=error)
            else:
                self.log.error(refusal.event, error=error, hint=refusal.hint)
        self.director_error = error

    def _stop_if_refused(self, exc: BaseException) -> None:
        """Raise ``Fatal`` when the director has refused the proof of a node that never
        joined on every attempt for ``director_refusal_span`` (and at least
        ``director_refusals_to_stop`` times); any other outcome starts the count again."""
        refusal = proof_refusal(exc)
        if refusal is None or self.node.has_joined:
            self._refused = None
            return
        now = self.now()
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
        self.log.error("node.gave_up", reason=message, exit_code=refusal.exit_code)
        raise Fatal(refusal.exit_code, message)

    def _director_up(self) -> None:
        if self.director_error is not None:
            self.log.info("director.recovered")
        self.director_error = None

    async def _leave(self) -> None:
        """Tell peers (and, if last, the director), let queued frames out, then stop."""
        effects = self.node.leave(self.now())
        unregister = [e for e in effects if isinstance(e, UnregisterCoordinator)]
        self.apply([e for e in effects if not isinstance(e, UnregisterCoordinator)])
        for link in list(self.links.values()):
            link.finish()
        with trio.move_on_after(self.config.leave_flush_timeout):
            for effect in unregister:
                async with self._register_lock:  # the unregister must be the last word
                    await self._unregister(effect.term)
            if self.links:
                await self._links_gone.wait()
        for subscriber in self._subscribers:
            subscriber.close()
        self.log.info("node.left")
