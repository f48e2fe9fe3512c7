"""The node state machine: membership, relaying, state transfer and anti-entropy.

Events are method calls (``peer_connected``, ``frame_received``, ``send_text``, ``tick``,
…) carrying ``now``; each returns a list of effects for the shell to carry out. The node
never blocks, never reads a clock and never touches a socket.

Rules:
- Roles: ``joining`` → ``member`` (on the coordinator's ``nodes`` listing it) or
  ``coordinator`` (on ``start_discussion``, a hand-over or an election won);
  ``coordinator`` → ``member`` when a claim of a newer term (or of the same term by a
  higher node) is accepted; ``member`` → ``joining`` when the coordinator's ``nodes`` no
  longer lists it (it was taken for dead: it asks to join again); any role → ``leaving``
  (on ``leave``), which is final.
- Terms only grow. A coordinator claim (``update-coordinator``) is signed by the coordinator
  it names, or, for a hand-over, by the coordinator it replaces; any other is refused. A
  claim of an older term is refused and answered with the current signed claim (fencing);
  of the same term, the higher rank ``(priority, node-id)`` wins; a term more than
  ``max_term_step`` above any seen is refused. An accepted new claim is flooded to linked
  peers. ``nodes`` is taken only from the coordinator of the current term.
- A member that has not heard the coordinator for ``failure_timeout`` stands for election
  (``chatd.core.election``); a higher node that hears an ``election`` answers ``vote`` and
  stands itself (at most once per ``election_timeout / 2`` per candidate; a coordinator
  reasserts at most once per ``election_timeout``); a node that finds a lower coordinator
  announced stands too (bully).
- The coordinator admits (``join``) and removes members (``leave``, or silence for
  ``failure_timeout``), and after every change sends ``nodes`` to every linked member.
- A node whose own timer fires ``failure_timeout`` late was paused: it suspects nobody for
  that gap (no flapping after SIGSTOP/SIGCONT); fencing then brings it up to date.
- ``election`` and ``vote`` are taken from members only.
- Messages follow one acceptance rule, the same at every honest node
  (``chatd.core.messaging``); a peer that hands over an invalid one is banned. Each is
  relayed once, on first sight, to the neighbours (and the coordinator) that the peer it
  came from did not send it to itself.
- Names: a node renames itself at once (its messages carry the new name); the coordinator
  renames a member only on that member's own ``rename`` (its authenticated link), at most
  ``rename_burst`` at once then ``rename_rate`` a second, and says so in ``nodes``. A
  member listed under another name than its own asks again, at most every
  ``rename_retry``. Presence events are derived from the membership (chatd.core.presence);
  ``nodes.departed`` says which removed members left and which were taken for dead.
- Frames whose ``node-id`` is not the authenticated peer that sent them are refused.
  Refusals are logged once, then summed (``chatd.core.abuse``); frames no honest node sends
  are strikes, and too many close the link.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Concatenate, ParamSpec

import attrs

from chat import identity
from chat.names import name_problem
from chat.wire import (
    Auth,
    CoordinatorRecord,
    Discussion,
    DiscussionRequest,
    Election,
    Frame,
    Heartbeat,
    Hello,
    Join,
    Leave,
    Message,
    Nodes,
    Rename,
    UpdateCoordinator,
    Vote,
)
from chat.wire.bounds import MAX_CLOCK_ENTRIES
from chatd.core.coordination import Coordination
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
from chatd.core.election import Phase
from chatd.core.messaging import Messaging, chunk_messages
from chatd.core.overlay import assign
from chatd.core.snapshot import Snapshot

__all__ = [
    "Announce",
    "Deliver",
    "Dial",
    "Disconnect",
    "Effect",
    "Log",
    "Node",
    "NodeError",
    "RegisterCoordinator",
    "Role",
    "Send",
    "Snapshot",
    "Undial",
    "UnregisterCoordinator",
    "chunk_messages",
]


P = ParamSpec("P")
Event = Callable[Concatenate["Node", P], list[Effect]]


def _event(method: Event[P]) -> Event[P]:
    """An event method: its effects, then the log lines it recorded and the dial changes."""

    def handle(self: Node, /, *args: P.args, **kwargs: P.kwargs) -> list[Effect]:
        return self._finish(method(self, *args, **kwargs))

    handle.__doc__ = method.__doc__
    return handle


class Node(Messaging, Coordination):
    """A chat node's whole protocol, sans I/O: see the rules above."""

    def _finish(self, effects: list[Effect]) -> list[Effect]:
        effects.extend(self.log.drain())
        wanted = self.dials()
        for peer in sorted(self._dialing.keys() - wanted.keys()):
            del self._dialing[peer]
            effects.append(Undial(peer))
        for peer, address in sorted(wanted.items()):
            if self._dialing.get(peer) != address:
                self._dialing[peer] = address
                effects.append(Dial(peer, address))
        return effects

    # Reading ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """What status and who show."""
        return Snapshot(
            node_id=self.node_id,
            name=self.me.name,
            address=self.me.address,
            public_address=self.me.public_address,
            role=self.role,
            coordinator=self.coordinator,
            term=self.term,
            ready=self.ready,
            has_joined=self.has_joined,
            members=tuple(sorted(self.members.values(), key=lambda m: m.node_id)),
            neighbours=tuple(self.neighbours()),
            peers=dict(self.peers),
            last_heard=dict(self.last_heard),
            vector_clock=self.delivered_clock(),
            messages=len(self.history),
            counters=dict(self.counters),
        )

    def recent(self, n: int) -> list[Message]:
        """The last ``n`` messages delivered, in delivery order."""
        return self.history.last(n)

    def messages(self) -> list[Message]:
        """The whole history, in delivery order."""
        return list(self.history)

    # Lifecycle events ------------------------------------------------------------------

    @_event
    def start_discussion(self, term: int, now: float) -> list[Effect]:
        """The director said nobody is here: become the coordinator of a new discussion."""
        self.role = Role.COORDINATOR
        self.has_joined = True
        self.term = self._max_term = max(self.term, term)
        self.coordinator = self.node_id
        self._coordinator_since = now
        self.members = {self.node_id: self.me}
        self.overlay = assign(self.members, self.config.full_mesh_max)
        self.claim = identity.sign_claim(
            self.identity, self.node_id, self.term, self.me.public_address
        )
        self.log.info("discussion.started", term=self.term)
        self._next_register = now + self.config.director_interval
        return [*self._observe(), RegisterCoordinator(self.coordinator_record())]

    @_event
    def join(self, coordinator: CoordinatorRecord, now: float) -> list[Effect]:
        """The director named the coordinator: dial it (the shell does) and ask to join (on
        the link's ``peer_connected``, or now if the link is up already)."""
        self.coordinator = coordinator.node_id
        self.coordinator_address = coordinator.public_address
        self._coordinator_since = now
        self.term = max(self.term, coordinator.term)
        self.log.info(
            "join.started", coordinator=coordinator.node_id, address=coordinator.public_address
        )
        peer = coordinator.node_id
        if self.role is Role.JOINING and peer in self.peers:
            # Linked already (a neighbour before, or a join that timed out): the shell dials
            # nothing, so no peer_connected will ask for us.
            self._discussion_expected[peer] = now + self.config.join_timeout
            return [Send(peer, Join(self.delivered_clock()))]
        return []

    @_event
    def leave(self, now: float) -> list[Effect]:
        """Leave for good: hand the coordinator role over, tell every linked peer."""
        effects: list[Effect] = []
        was_coordinator = self.role is Role.COORDINATOR
        self.role = Role.LEAVING
        if was_coordinator:
            others = [m for m in self.members.values() if m.node_id != self.node_id]
            if others:
                successor = max(others, key=lambda m: (m.priority, m.node_id))
                self.term += 1
                self.log.info("coordinator.handover", successor=successor.node_id, term=self.term)
                handover = identity.sign_claim(
                    self.identity, successor.node_id, self.term, successor.public_address
                )
                effects.extend(Send(peer, handover) for peer in self.peers)
            else:
                self.log.info("discussion.ended", messages=len(self.history))
                effects.append(UnregisterCoordinator(self.term))
        for peer in self.peers:
            effects.append(Send(peer, Leave(self.node_id, self.term)))
        self.log.info("node.leaving", peers=len(self.peers))
        return effects

    @_event
    def tick(self, now: float) -> list[Effect]:
        """Timers: heartbeats with the anti-entropy digest; the director registration."""
        effects: list[Effect] = []
        if self.role is Role.LEAVING:
            return effects
        if self._last_tick is None:
            self._forgive_silence(now)  # nobody can be judged before our first look
        elif now - self._last_tick > self.config.failure_timeout:
            # We were not running (SIGSTOP, a stalled machine): the silence is ours.
            self.log.warning("node.paused", seconds=round(now - self._last_tick, 3))
            self._forgive_silence(now)
        self._last_tick = now
        self.refusals.flush(self.log, now)
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat_interval
            # Failure detection needs only the coordinator's links at this rate; the other
            # links carry the anti-entropy digest every repair_interval.
            gossip = now >= self._next_gossip
            if gossip:
                self._next_gossip = now + self.config.repair_interval
            beat = Heartbeat(self.node_id, self.term, self.delivered_clock(), self.history_hash())
            effects.extend(
                Send(peer, beat)
                for peer in self.peers
                if gossip or self.role is Role.COORDINATOR or peer == self.coordinator
            )
            if self.role is Role.COORDINATOR:
                effects.extend(self._expire_members(now))
            elif (
                self.role is Role.MEMBER
                and self.candidacy is None
                and self._coordinator_silent(now)
            ):
                self.log.warning("coordinator.suspected", coordinator=self.coordinator)
                effects.extend(self._stand_for_election(now))
            effects.extend(self._assert_name(now))
        if self.candidacy is not None and now >= self.candidacy.deadline:
            if self.candidacy.phase is Phase.VOTING:
                effects.extend(
                    self._become_coordinator(self.candidacy.term, now, "no higher node answered")
                )
            else:
                self.log.warning("election.no_announcement", term=self.candidacy.term)
                effects.extend(self._stand_for_election(now))
        if self.role is Role.COORDINATOR and now >= self._next_register:
            self._next_register = now + self.config.director_interval
            effects.append(RegisterCoordinator(self.coordinator_record()))
        return effects

    @_event
    def director_refused(self, current: CoordinatorRecord, now: float) -> list[Effect]:
        """The director holds another coordinator: yield to it, or outrank it."""
        if current.node_id == self.node_id or self.role is not Role.COORDINATOR:
            return []
        if not self._term_is_sane(current.term):
            self.log.warning(
                "director.refused", holder=current.node_id, reason="term far above any seen"
            )
            return []
        self.log.warning("director.refused", holder=current.node_id, holder_term=current.term)
        self._max_term = max(self._max_term, current.term)
        if current.term > self.term or self.rank(current.node_id) > self.rank(self.node_id):
            # Signed by us as a hand-over, so the members that follow us take it and follow
            # too (an unsigned claim is not flooded: they would follow us for good).
            claim = identity.sign_claim(
                self.identity, current.node_id, current.term, current.public_address
            )
            return self._adopt(claim, source=None, now=now)
        return self._become_coordinator(self._max_term + 1, now, "outranks the director's holder")

    # Local requests --------------------------------------------------------------------

    def send_text(self, text: str, timestamp: str, now: float) -> tuple[Message, list[Effect]]:
        """Create, deliver locally and relay a message; raises ``NodeError`` if refused."""
        if not self.has_joined or self.role is Role.LEAVING:
            raise NodeError("not-ready", f"this node is {self.role.value}, not in a discussion")
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > self.config.max_text_bytes:
            raise NodeError(
                "too-large", f"text is {size} bytes; the limit is {self.config.max_text_bytes}"
            )
        if not text.strip():
            raise NodeError("bad-request", "text is empty")
        if (
            self.node_id not in self.buffer.delivered
            and len(self.buffer.delivered) >= MAX_CLOCK_ENTRIES
        ):
            raise NodeError("not-ready", "this discussion has had too many authors for a new one")
        if not self._send_bucket.allow(now):
            raise NodeError(
                "rate-limited",
                f"over the flood limit ({self.config.flood_rate:g} messages/s, bursts of "
                f"{self.config.flood_burst}); try again shortly",
            )
        clock = dict(self.buffer.delivered)
        clock[self.node_id] = clock.get(self.node_id, 0) + 1
        message = self.identity.sign(self.me.name, timestamp, text, clock)
        effects = self._accept(message, source=None)
        self.log.info("message.sent", id=message.id, length=size)
        return message, self._finish(effects)

    @_event
    def rename(self, name: str, now: float) -> list[Effect]:
        """Take ``name`` from now on (new messages are signed with it); the coordinator
        renames itself in the membership, a member asks the coordinator (and asks again
        while the membership shows another name). Raises ``NodeError`` if refused."""
        if (problem := name_problem(name)) is not None:
            raise NodeError("bad-request", problem)
        if self.role is Role.LEAVING:
            raise NodeError("leaving", "this node is leaving")
        if name == self.me.name:
            return []
        if not self._rename_bucket.allow(now):
            raise NodeError(
                "rate-limited",
                f"over the rename limit ({self.config.rename_burst} at once, then one per"
                f" {1 / self.config.rename_rate:g} s); try again shortly",
            )
        self.log.info("node.renamed", old=self.me.name, new=name)
        self.me = attrs.evolve(self.me, name=name)
        if self.role is Role.COORDINATOR:
            self.members[self.node_id] = self.me
            return self._membership_changed()
        self._next_rename_assert = now
        return self._assert_name(now)

    # Peer events -----------------------------------------------------------------------

    @_event
    def peer_connected(self, hello: Hello, now: float) -> list[Effect]:
        """A peer finished the handshake (its identity and secret are proven)."""
        peer = hello.node_id
        if peer in self.banned:
            self.log.info("peer.refused", peer=peer, reason="banned")
            return [Disconnect(peer, "banned from this discussion")]
        self.peers[peer] = hello
        self.last_heard[peer] = now
        self.log.info("peer.connected", peer=peer, peer_name=hello.name)
        effects: list[Effect] = []
        if self.role is Role.COORDINATOR and self.claim is not None:
            effects.append(Send(peer, self.claim))  # the claim before nodes of its term
        if self.role is Role.JOINING and peer == self.coordinator:
            self._discussion_expected[peer] = now + self.config.join_timeout
            effects.append(Send(peer, Join(self.delivered_clock())))
        elif self.role is Role.COORDINATOR:
            # Members resync; a node we had taken for dead learns it must join again.
            effects.append(Send(peer, self._nodes_frame()))
        if (
            self.candidacy is not None
            and self.candidacy.phase is Phase.VOTING
            and peer in self._higher_members()
        ):
            effects.append(Send(peer, Election(self.node_id, self.candidacy.term)))
        # Compare digests at once rather than a heartbeat later.
        effects.append(
            Send(
                peer,
                Heartbeat(self.node_id, self.term, self.delivered_clock(), self.history_hash()),
            )
        )
        return effects

    @_event
    def peer_disconnected(self, peer: str, now: float) -> list[Effect]:
        if self.peers.pop(peer, None) is not None:
            self.log.info("peer.disconnected", peer=peer)
        self._last_request.pop(peer, None)
        return []

    @_event
    def frame_malformed(self, peer: str, reason: str, now: float) -> list[Effect]:
        """A peer's frame that does not decode: logged once per interval, then summed."""
        self.counters["frames.malformed"] += 1
        self.refusals.note(
            self.log, "frame.malformed", peer, "frame", "undecodable", now, detail=reason[:200]
        )
        return []

    @_event
    def frame_received(self, peer: str, frame: Frame, now: float) -> list[Effect]:
        """A frame from an authenticated peer. Refusals are logged and change nothing."""
        self.last_heard[peer] = now
        match frame:
            case Message():
                return self._on_message(peer, frame, now)
            case Heartbeat():
                return self._on_heartbeat(peer, frame, now)
            case DiscussionRequest():
                return self._send_discussion(peer, frame.vector_clock, frame.chains)
            case Discussion():
                return self._on_discussion(peer, frame, now)
            case Join():
                return self._on_join(peer, frame, now)
            case Nodes():
                return self._on_nodes(peer, frame, now)
            case Leave():
                return self._on_leave(peer, frame)
            case UpdateCoordinator():
                return self._on_update_coordinator(peer, frame, now)
            case Election():
                return self._on_election(peer, frame, now)
            case Vote():
                return self._on_vote(peer, frame, now)
            case Rename():
                return self._on_rename(peer, frame, now)
            case Hello() | Auth():
                return self._refuse(peer, frame, "handshake frame after the handshake")
        raise AssertionError(f"unhandled frame {frame!r}")  # pragma: no cover
