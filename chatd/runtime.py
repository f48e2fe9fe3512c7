"""The trio shell around the core ``Node``: it feeds events in and carries effects out.

Every event handler is synchronous, so each core transition runs without interleaving.
Effects never wait: frames go into per-peer queues (``chatd.peer_links``), deliveries into
per-subscriber queues (``chatd.fanout``), director calls into background tasks
(``chatd.registration``), dials into one task per peer.

Errors are split in one place, ``feed``, as h11 splits a peer's protocol errors from its
own. A peer's bad input is the core's to refuse: it answers with effects (a log line, a
strike, a closed link) and the node goes on. A local client's bad request raises
``NodeError``, which ``feed`` passes to the caller to answer. Anything else the core
raises is a bug of ours: logged with a traceback, it costs that one event (the frame, the
tick, the request), never the node.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from typing import Any

import trio
from attrs import evolve

from chat.auth import Keyring
from chat.log import Logger
from chat.wire import Message, encode_frame
from chat.wire.bounds import MAX_MEMBERS
from chatd.config import Config
from chatd.core.effects import (
    Announce,
    Deliver,
    Dial,
    Disconnect,
    Effect,
    Log,
    NodeError,
    RegisterCoordinator,
    Role,
    Send,
    Undial,
    UnregisterCoordinator,
)
from chatd.core.node import Node
from chatd.core.presence import Presence
from chatd.fanout import Fanout
from chatd.peer_links import PeerLinks
from chatd.peers import PeerLink
from chatd.registration import DirectorApi, Registration
from chatd.transport import Channel, Transport


class CoreFailed(Exception):
    """A core transition raised: a bug of ours, logged already."""


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
        log: Logger,
        wallclock: Callable[[], str] = utc_timestamp,
    ) -> None:
        self.node = node
        # The group secrets (None: --insecure); replaced by ``reload_keyring`` on SIGHUP.
        self.keyring = keyring
        self.config = config
        self.wallclock = wallclock
        self._log = log
        self.peer_links = PeerLinks(self, transport, rng)
        self.registration = Registration(self, director, director_errors)
        self.fanout = Fanout(config.tail_queue_messages, lambda: self.log)
        # node-id -> when (trio time) this node last delivered a message from it (``who``).
        self.last_delivered: dict[str, float] = {}
        self.joined = trio.Event()
        self.out = trio.Event()  # set when a node that was in a discussion drops out of it
        self._leave_requested = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._timer: trio.CancelScope | None = None  # the timer's sleep, until the next tick
        # Benchmark hook (``chatd --bench-trace``): called with every delivered message.
        self.on_deliver: Callable[[Message], None] | None = None

    @property
    def log(self) -> Logger:
        """The shell's logger, with the current term bound."""
        return self._log.bind(term=self.node.term)

    @property
    def links(self) -> dict[str, PeerLink]:
        """The authenticated links that are up, by peer."""
        return self.peer_links.up

    @property
    def director_error(self) -> str | None:
        return self.registration.director_error

    @property
    def observed_address(self) -> str:
        """Where the director saw this node come from ("" until it said)."""
        return self.registration.observed_address

    def now(self) -> float:
        return trio.current_time()

    # Effects -----------------------------------------------------------------------------

    def feed(self, event: str, transition: Callable[[], list[Effect]], **context: object) -> bool:
        """Run one core transition and carry out its effects; False if the core failed
        (a bug: logged with a traceback). ``NodeError`` goes to the caller."""
        try:
            effects = transition()
        except NodeError:
            raise
        except Exception:
            self.log.exception("core.failed", core_event=event, **context)
            return False
        self.apply(effects)
        return True

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
                case Log(level, event, fields):
                    getattr(self._log, level)(event, **fields)
                case Disconnect(peer, reason):
                    if (link := self.links.get(peer)) is not None:
                        link.close(reason)
                case Dial(peer, address):
                    self.peer_links.dial(peer, address)
                case Undial(peer):
                    self.peer_links.undial(peer)
                case RegisterCoordinator(record):
                    self.spawn(self.registration.register, record)
                case UnregisterCoordinator(term):
                    self.spawn(self.registration.unregister, term)
        self._track_joined()
        self.peer_links.reconcile()
        if self._timer is not None:
            self._timer.deadline = self.node.next_deadline()

    def _track_joined(self) -> None:
        node = self.node
        if node.ready:
            self.joined.set()
            if self.out.is_set():
                self.out = trio.Event()
        elif node.role is Role.JOINING and node.has_joined and not self.out.is_set():
            self.joined = trio.Event()
            self.out.set()

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, object]], *args: object) -> None:
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
        self.fanout.publish(item)

    # Local requests ------------------------------------------------------------------------

    def send_text(self, text: str) -> Message:
        """Send ``text`` as this node's user; raises ``NodeError`` if refused."""
        sent: list[Message] = []

        def transition() -> list[Effect]:
            message, effects = self.node.send_text(text, self.wallclock(), self.now())
            sent.append(message)
            return effects

        if not self.feed("send", transition):
            raise CoreFailed("send")
        return sent[0]

    def rename(self, name: str) -> None:
        """Take ``name`` (raises ``NodeError`` if invalid or too frequent)."""
        if not self.feed("rename", partial(self.node.rename, name, self.now())):
            raise CoreFailed("rename")

    def request_leave(self) -> None:
        self._leave_requested.set()

    async def serve_peers(self, channel: Channel) -> None:
        """Handle one incoming connection: handshake, then the link."""
        await self.peer_links.serve(channel)

    # Tasks --------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve peers, join the discussion, and run until asked to leave; then leave.

        ``task_status.started()`` once the peer listener is bound. Returns after the
        node has told its peers and the director, with everything closed.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            nursery.start_soon(self._run_timers)
            nursery.start_soon(self.registration.stay_joined)
            await self._leave_requested.wait()
            await self._leave()
            nursery.cancel_scope.cancel()

    async def _run_timers(self) -> None:
        while True:
            # Woken at the core's next deadline, which ``apply`` moves after every event:
            # an idle node sleeps until something is due, a new one comes on time.
            with trio.CancelScope(deadline=self.node.next_deadline()) as self._timer:
                await trio.sleep_forever()
            self._timer = None
            if not self.feed("tick", self._tick):
                # The deadline may not have moved: do not spin on a failing timer.
                await trio.sleep(self.config.heartbeat_interval)

    def _tick(self) -> list[Effect]:
        return self.node.tick(self.now())

    async def _leave(self) -> None:
        """Tell peers (and, if last, the director), let queued frames out, then stop."""
        effects = self.node.leave(self.now())
        unregister = [e for e in effects if isinstance(e, UnregisterCoordinator)]
        self.apply([e for e in effects if not isinstance(e, UnregisterCoordinator)])
        self.peer_links.finish()
        with trio.move_on_after(self.config.leave_flush_timeout):
            for effect in unregister:
                async with self.registration.lock:  # the unregister must be the last word
                    await self.registration.unregister(effect.term)
            if self.links:
                await self.peer_links.all_gone.wait()
        self.fanout.close()
        self.log.info("node.left")
