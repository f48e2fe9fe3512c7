"""A chat node, sans I/O: its parts composed, each event routed to the part that owns it.

Events are method calls (``peer_connected``, ``frame_received``, ``send_text``, ``tick``,
…) carrying ``now``; each returns the effects for the shell to carry out, in order, ending
with the log lines the event recorded and the changes to what the node dials. The node
never blocks, never reads a clock, never touches a socket and never logs.

The parts, each owning its state, with its rules at the top of its module:
- ``chatd.core.election``: the role (its transition table), terms and coordinator claims
  (``chatd.core.terms``), the bully election.
- ``chatd.core.membership``: the members, the overlay, names, presence events.
- ``chatd.core.liveness``: when peers were last heard, pauses, the heartbeat schedule.
- ``chatd.core.replica``: messages (acceptance, relay, causal delivery, history),
  anti-entropy and state transfer.
- ``chatd.core.links``: the authenticated links, refusals and bans.
- ``chatd.core.dialing``: which links this node opens itself.
"""

from __future__ import annotations

from chat.identity import Identity
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
    MemberRecord,
    Message,
    Nodes,
    Rename,
    UpdateCoordinator,
    Vote,
)
from chatd.config import Config
from chatd.core import election
from chatd.core.acceptance import chunk_messages
from chatd.core.dialing import Dialing, dial_inputs, dials, needed
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
from chatd.core.links import Links
from chatd.core.liveness import Liveness
from chatd.core.membership import Membership
from chatd.core.recorder import Recorder
from chatd.core.replica import Replica
from chatd.core.snapshot import Snapshot
from chatd.core.standing import Standing

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


class Node:
    """A chat node's whole protocol, sans I/O."""

    def __init__(self, me: MemberRecord, identity: Identity, config: Config) -> None:
        self.identity = identity
        self.config = config
        self.standing = Standing()
        self.log = Recorder(lambda: self.standing.term)
        self.links = Links(config, self.log)
        self.liveness = Liveness(config, self.log)
        self.membership = Membership(me, config, self.standing, self.links, self.log)
        self.election = election.Election(
            identity, config, self.standing, self.membership, self.liveness, self.links, self.log
        )
        self.replica = Replica(
            identity, config, self.standing, self.membership, self.links, self.log
        )
        self.dialing = Dialing(self.log)
        self._unreachable = False  # logged: no member of the discussion can be dialed
        # What the dials and the reachable count were computed from, so an event that
        # changed none of it (a message, a heartbeat) does not compute them again.
        self._inputs: tuple[object, ...] = ()
        self._term = 0  # the term our digests last carried

    # Reading -----------------------------------------------------------------------------

    @property
    def me(self) -> MemberRecord:
        return self.membership.me

    @property
    def node_id(self) -> str:
        return self.membership.node_id

    @property
    def role(self) -> Role:
        return self.standing.role

    @property
    def term(self) -> int:
        return self.standing.term

    @property
    def ready(self) -> bool:
        return self.standing.ready

    @property
    def has_joined(self) -> bool:
        return self.standing.has_joined

    def next_deadline(self) -> float:
        """When ``tick`` is next due: nothing sooner is (the shell asks after every event)."""
        if self.role is Role.LEAVING:
            return float("inf")
        coordinator = self.role is Role.COORDINATOR
        return self.election.next_deadline(self.liveness.next_deadline(coordinator))

    def snapshot(self) -> Snapshot:
        """What status and who show."""
        me, members = self.me, self.membership.members
        return Snapshot(
            node_id=me.node_id,
            name=me.name,
            address=me.address,
            public_address=me.public_address,
            role=self.role,
            coordinator=self.standing.coordinator,
            term=self.term,
            ready=self.ready,
            has_joined=self.has_joined,
            members=tuple(sorted(members.values(), key=lambda m: m.node_id)),
            neighbours=tuple(self.membership.neighbours()),
            peers=dict(self.links.peers),
            last_heard=dict(self.liveness.last_heard),
            vector_clock=self.replica.delivered_clock(),
            messages=len(self.replica.history),
            counters=dict(self.log.counters),
            reachable=me.reachable,
            reachable_members=self._reachable_members(),
        )

    def _reachable_members(self) -> int | None:
        if not self.ready:
            return None
        return sum(m.reachable for m in self.membership.members.values())

    def recent(self, n: int) -> list[Message]:
        """The last ``n`` messages delivered, in delivery order."""
        return self.replica.history.last(n)

    def messages(self) -> list[Message]:
        """The whole history, in delivery order."""
        return list(self.replica.history)

    def _finish(self, effects: list[Effect], now: float) -> list[Effect]:
        """An event's effects, then its log lines and the changes to what we dial."""
        self._note_sent(effects, now)
        inputs = dial_inputs(self.standing, self.membership, self.election.voting())
        changed = len(inputs) != len(self._inputs) or any(
            a is not b for a, b in zip(inputs, self._inputs, strict=True)
        )
        if changed:
            self._inputs = inputs
            self._note_reachable_members()
        effects.extend(self.log.drain())
        if changed:
            wanted = dials(self.standing, self.membership, self.election.voting())
            effects.extend(self.dialing.update(wanted))
        return effects

    def _note_sent(self, effects: list[Effect], now: float) -> None:
        """What went to each peer (liveness, digests); digests are due after a delivery
        or a new term."""
        liveness, changed = self.liveness, self.term != self._term
        for effect in effects:
            if isinstance(effect, Send):
                frame = effect.frame
                digest = (frame.term, frame.hash) if isinstance(frame, Heartbeat) else None
                liveness.sent(effect.peer, now, digest)
            elif isinstance(effect, Deliver):
                changed = True
        if changed:
            self._term = self.term
            liveness.changed(now)

    def _note_reachable_members(self) -> None:
        """Log once when the discussion has no reachable member left, and once when it
        has one again: nobody outside its members' homes can join it meanwhile."""
        count = self._reachable_members()
        alone = count == 0
        if count is not None and alone != self._unreachable:
            self._unreachable = alone
            if alone:
                self.log.warning("discussion.unreachable", members=len(self.membership.members))
            else:
                self.log.info("discussion.reachable", reachable=count)

    # Lifecycle events --------------------------------------------------------------------

    def start_discussion(self, term: int, now: float) -> list[Effect]:
        """The director said nobody is here: become the coordinator of a new discussion."""
        return self._finish(self.election.start(term, now), now)

    def reachability(self, reachable: bool, observed_address: str, now: float) -> list[Effect]:
        """The director said whether peers can dial this node (its dial-back) and where it
        saw the node come from; both are in this node's member record and its ``hello``,
        the first in its rank, from now on."""
        return self._finish(self.membership.set_reachable(reachable, observed_address), now)

    def join(self, coordinator: CoordinatorRecord, now: float) -> list[Effect]:
        """The director named the coordinator: dial it (``Dial``) and ask to join (on the
        link's ``peer_connected``, or now if the link is up already)."""
        self.election.follow_director(coordinator, now)
        peer = coordinator.node_id
        if self.role is Role.JOINING and peer in self.links.peers:
            # Linked already (a neighbour before, or a join that timed out): no new link,
            # so no peer_connected will ask for us. A history still streaming in is not
            # asked for again: it would come twice.
            if self.replica.streaming(peer, now):
                return self._finish([], now)
            return self._finish(self._ask_to_join(peer, now), now)
        return self._finish([], now)

    def _ask_to_join(self, peer: str, now: float) -> list[Effect]:
        self.replica.expect(peer, now + self.config.join_timeout)
        return [Send(peer, Join(self.replica.delivered_clock()))]

    def leave(self, now: float) -> list[Effect]:
        """Leave for good: hand the coordinator role over, tell every linked peer."""
        effects = self.election.leave(len(self.replica.history))
        peers = self.links.peers
        effects.extend(Send(peer, Leave(self.node_id, self.term)) for peer in peers)
        self.log.info("node.leaving", peers=len(peers))
        return self._finish(effects, now)

    def tick(self, now: float) -> list[Effect]:
        """Timers: heartbeats, digests, failure detection, unneeded links, the candidacy's
        deadline, the director registration."""
        if self.role is Role.LEAVING:
            return []
        liveness = self.liveness
        paused = liveness.look(now, self.next_deadline())
        self.links.flush(now)
        coordinator = self.role is Role.COORDINATOR
        effects: list[Effect] = []
        beat = liveness.beat_due(now, coordinator)
        if beat and coordinator:
            others = [m for m in self.membership.members if m != self.node_id]
            effects.extend(self.membership.expire(liveness.expired(others, now)))
        effects.extend(self._heartbeats(now, beat, liveness.digests_due(now), paused))
        if beat:
            effects.extend(self.membership.assert_name(now))
            keep = needed(self.standing, self.membership, self.dialing.asked)
            linger = self.config.link_linger
            effects.extend(
                self.dialing.prune(keep, now, linger, lambda p: liveness.idle(p, now, linger))
            )
        effects.extend(self.election.suspect(now))
        effects.extend(self.election.on_timer(now))
        return self._finish(effects, now)

    def _heartbeats(self, now: float, beat: bool, digests: bool, paused: bool) -> list[Effect]:
        """The heartbeats due (``Liveness.targets``): one frame, to each target."""
        mine = (self.term, self.replica.chains.total()) if digests else None
        targets = self.liveness.targets(
            now,
            self.role is Role.COORDINATOR,
            self.standing.coordinator,
            self.links.peers,
            self.membership.neighbours(),
            beat=beat,
            digest=mine,
            everyone=paused,
        )
        if not targets:
            return []
        heartbeat = self.replica.heartbeat()
        return [Send(peer, heartbeat) for peer in sorted(targets)]

    def director_refused(self, current: CoordinatorRecord, now: float) -> list[Effect]:
        """The director holds another coordinator: yield to it, or outrank it."""
        return self._finish(self.election.director_refused(current, now), now)

    # Local requests ----------------------------------------------------------------------

    def send_text(self, text: str, timestamp: str, now: float) -> tuple[Message, list[Effect]]:
        """Create, deliver locally and relay a message; raises ``NodeError`` if refused."""
        message, effects = self.replica.create(text, timestamp, now)
        return message, self._finish(effects, now)

    def rename(self, name: str, now: float) -> list[Effect]:
        """Take ``name`` from now on (new messages are signed with it); the coordinator
        renames itself in the membership, a member asks the coordinator (and asks again
        while the membership shows another name). Raises ``NodeError`` if refused."""
        return self._finish(self.membership.rename(name, now), now)

    # Peer events -------------------------------------------------------------------------

    def peer_connected(self, hello: Hello, now: float) -> list[Effect]:
        """A peer finished the handshake (its identity and secret are proven)."""
        peer = hello.node_id
        refused = self.links.connected(hello)
        if refused:
            return self._finish(refused, now)
        self.liveness.heard(peer, now)
        self.dialing.connected(peer)
        effects = self.election.greet(peer)  # the claim before nodes of its term
        if self.role is Role.JOINING and peer == self.standing.coordinator:
            effects.extend(self._ask_to_join(peer, now))
        elif self.role is Role.COORDINATOR:
            # Members resync; a node we had taken for dead learns it must join again.
            effects.append(Send(peer, self.membership.nodes_frame()))
        effects.extend(self.election.canvass(peer))
        # Compare digests at once rather than a heartbeat later.
        effects.append(Send(peer, self.replica.heartbeat()))
        return self._finish(effects, now)

    def peer_disconnected(self, peer: str, now: float) -> list[Effect]:
        self.links.disconnected(peer)
        self.dialing.disconnected(peer)
        self.liveness.forget(peer)
        self.replica.forget(peer)
        return self._finish([], now)

    def frame_malformed(self, peer: str, reason: str, now: float) -> list[Effect]:
        """A peer's frame that does not decode: logged once per interval, then summed."""
        self.log.counters["frames.malformed"] += 1
        self.links.note("frame.malformed", peer, "frame", "undecodable", now, detail=reason[:200])
        return self._finish([], now)

    def frame_received(self, peer: str, frame: Frame, now: float) -> list[Effect]:
        """A frame from an authenticated peer. Refusals are logged and change nothing."""
        self.liveness.heard(peer, now)
        return self._finish(self._route(peer, frame, now), now)

    def _route(self, peer: str, frame: Frame, now: float) -> list[Effect]:
        match frame:
            case Message():
                return self.replica.on_message(peer, frame, now)
            case Heartbeat():
                return self._on_heartbeat(peer, frame, now)
            case DiscussionRequest():
                return self.replica.send_discussion(peer, frame.vector_clock, frame.chains)
            case Discussion():
                return self.replica.on_discussion(peer, frame, now)
            case Join():
                return self._on_join(peer, frame, now)
            case Nodes():
                return self._on_nodes(peer, frame, now)
            case Leave():
                return self.membership.on_leave(peer, frame, now)
            case UpdateCoordinator():
                return self.election.on_claim(peer, frame, now)
            case Election():
                return self.election.on_election(peer, frame, now)
            case Vote():
                return self.election.on_vote(peer, frame, now)
            case Rename():
                return self.membership.on_rename(peer, frame, now)
            case Hello() | Auth():
                reason = "handshake frame after the handshake"
                return self.links.refuse(peer, frame.TYPE, reason, now)
        raise AssertionError(f"unhandled frame {frame!r}")  # pragma: no cover

    def _on_heartbeat(self, peer: str, beat: Heartbeat, now: float) -> list[Effect]:
        if beat.node_id != peer:
            return self.links.refuse(peer, beat.TYPE, "node-id is not the sender", now)
        mine = (self.term, self.replica.chains.total())
        self.liveness.said(peer, (beat.term, beat.hash), mine, now)
        effects = self.election.on_heartbeat(peer, beat, now)
        return effects + self.replica.compare_digest(peer, beat, now)

    def _on_join(self, peer: str, frame: Join, now: float) -> list[Effect]:
        refused = self.membership.admit(peer, frame, now)
        if refused is not None:
            return refused
        self.liveness.admit(peer, now)
        # History first, then membership: the newcomer is complete when it becomes a member.
        effects = self.replica.send_discussion(peer, frame.vector_clock)
        return effects + self.membership.changed()

    def _on_nodes(self, peer: str, frame: Nodes, now: float) -> list[Effect]:
        refused, before = self.membership.on_nodes(peer, frame, now)
        if before is None:
            return refused
        was = self.role
        effects = self.election.on_listing(peer, len(self.replica.history), now)
        if was is Role.MEMBER and self.role is Role.JOINING:
            effects.extend(self._ask_to_join(peer, now))
        return effects + self.membership.settled(before, now)
