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
- Terms only grow. A coordinator claim (``update-coordinator``, ``nodes``) of an older term
  is refused and answered with the current one (fencing); of the same term, the higher
  rank ``(priority, node-id)`` wins. An accepted new claim is flooded to linked peers.
- A member that has not heard the coordinator for ``failure_timeout`` stands for election
  (``chatd.core.election``); a higher node that hears an ``election`` answers ``vote`` and
  stands itself; a node that finds a lower coordinator announced stands too (bully).
- The coordinator admits (``join``) and removes members (``leave``, or silence for
  ``failure_timeout``), and after every change sends ``nodes`` to every linked member.
- A node whose own timer fires ``failure_timeout`` late was paused: it suspects nobody for
  that gap (no flapping after SIGSTOP/SIGCONT); fencing then brings it up to date.
- ``election`` and ``vote`` are taken from members only.
- A ``message`` is taken only if its signature matches its ``node-id`` (so relays are
  checkable), its text is within the limit and its clock is sane; it is relayed once, on
  first sight, to the neighbours (and the coordinator) except where it came from.
- Frames whose ``node-id`` is not the authenticated peer that sent them are refused.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from typing import Any

from attrs import frozen

from chatd import identity
from chatd.config import Config
from chatd.core.delivery import CausalBuffer
from chatd.core.election import Candidacy, Phase, Rank
from chatd.core.history import History
from chatd.core.overlay import assign
from chatd.identity import Identity
from chatd.wire import (
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
    UpdateCoordinator,
    Vote,
)

MAX_ID_CHARS = 64
MAX_NAME_CHARS = 64


class Role(enum.StrEnum):
    JOINING = "joining"
    MEMBER = "member"
    COORDINATOR = "coordinator"
    LEAVING = "leaving"


class NodeError(Exception):
    """A local request the node cannot honour; ``code`` is a control-protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# Effects -----------------------------------------------------------------------------


@frozen
class Send:
    peer: str
    frame: Frame


@frozen
class Deliver:
    message: Message


@frozen
class Disconnect:
    peer: str
    reason: str


@frozen
class RegisterCoordinator:
    record: CoordinatorRecord


@frozen
class UnregisterCoordinator:
    term: int


Effect = Send | Deliver | Disconnect | RegisterCoordinator | UnregisterCoordinator


def chunk_messages(messages: list[Message], budget: int) -> list[list[Message]]:
    """Split for state transfer so each ``discussion`` frame stays under ``budget`` bytes.

    The size is a safe over-estimate (JSON may escape a byte as six), so no encoding here.
    """
    chunks: list[list[Message]] = []
    current: list[Message] = []
    used = 0
    for message in messages:
        size = 600 + 6 * len(message.message) + 80 * len(message.vector_clock)
        if current and used + size > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(message)
        used += size
    if current:
        chunks.append(current)
    return chunks


class Node:
    def __init__(
        self,
        me: MemberRecord,
        ident: Identity,
        config: Config,
        rng: random.Random,
        log: Any,
    ) -> None:
        self.me = me
        self.identity = ident
        self.config = config
        self.rng = rng
        self._log = log
        self.role = Role.JOINING
        self.term = 0
        self.coordinator: str | None = None
        self.coordinator_address: str | None = None
        self.members: dict[str, MemberRecord] = {}
        self.overlay: dict[str, list[str]] = {}
        self.peers: dict[str, Hello] = {}  # authenticated, connected peers
        self.last_heard: dict[str, float] = {}
        self.buffer = CausalBuffer()
        self.history = History()
        self.candidacy: Candidacy | None = None
        self.has_joined = False  # once in a discussion, a node holds its history for good
        self._max_term = 0  # highest term seen in any election or claim
        self._coordinator_since = 0.0
        self._admitted: dict[str, float] = {}
        self._last_tick: float | None = None
        self._next_heartbeat = 0.0
        self._next_register = 0.0
        self._last_request: dict[str, float] = {}
        self._last_fence: dict[str, float] = {}
        self._membership_version = 0  # as coordinator: changes made in this term
        self._nodes_seen = (0, 0)  # (term, version) of the latest ``nodes`` taken
        # Cheap running totals for status and benchmarks (no per-message log lines).
        self.counters: Counter[str] = Counter()

    @property
    def log(self) -> Any:
        """The node's logger with the current term bound."""
        return self._log.bind(term=self.term)

    # Queries ---------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.me.node_id

    @property
    def ready(self) -> bool:
        return self.role in (Role.MEMBER, Role.COORDINATOR)

    def neighbours(self) -> list[str]:
        return self.overlay.get(self.node_id, [])

    def wanted_peers(self) -> set[str]:
        """Peers this node wants a link with: all members for the coordinator, else the
        overlay neighbours and the coordinator."""
        if self.role is Role.LEAVING:
            return set()
        if self.role is Role.COORDINATOR:
            return set(self.members) - {self.node_id}
        wanted = set(self.neighbours())
        if self.coordinator is not None and self.coordinator != self.node_id:
            wanted.add(self.coordinator)
        if self.candidacy is not None and self.candidacy.phase is Phase.VOTING:
            wanted |= self._higher_members()
        return wanted

    def rank(self, node_id: str) -> Rank:
        member = self.members.get(node_id)
        return (member.priority if member is not None else 0, node_id)

    def _higher_members(self) -> set[str]:
        mine = self.rank(self.node_id)
        return {m for m in self.members if m != self.node_id and self.rank(m) > mine}

    def dials(self) -> dict[str, str]:
        """Peers this node must dial itself, with their public address.

        Members dial the coordinator; between two members the lower node-id dials, so
        each link is opened from one end only.
        """
        out: dict[str, str] = {}
        for peer in self.wanted_peers():
            if peer == self.coordinator:
                address = self.coordinator_address
                if peer in self.members:
                    address = self.members[peer].public_address
                if address is not None:
                    out[peer] = address
            elif self.role is Role.COORDINATOR or peer not in self.members:
                continue
            elif self.node_id < peer or peer not in self.neighbours():
                # The second case: a candidate's link to a higher member off the overlay.
                out[peer] = self.members[peer].public_address
        return out

    def delivered_clock(self) -> dict[str, int]:
        return dict(self.buffer.delivered)

    def next_deadline(self) -> float:
        deadline = self._next_heartbeat
        if self.role is Role.COORDINATOR:
            deadline = min(deadline, self._next_register)
        if self.candidacy is not None:
            deadline = min(deadline, self.candidacy.deadline)
        return deadline

    def coordinator_record(self) -> CoordinatorRecord:
        return CoordinatorRecord(
            node_id=self.node_id,
            address=self.me.address,
            public_address=self.me.public_address,
            term=self.term,
        )

    # Lifecycle events ------------------------------------------------------------------

    def start_discussion(self, term: int, now: float) -> list[Effect]:
        """The director said nobody is here: become the coordinator of a new discussion."""
        self.role = Role.COORDINATOR
        self.has_joined = True
        self.term = self._max_term = max(self.term, term)
        self.coordinator = self.node_id
        self._coordinator_since = now
        self.members = {self.node_id: self.me}
        self.overlay = assign(self.members, self.config.full_mesh_max)
        self.log.info("discussion.started", term=self.term)
        self._next_register = now + self.config.director_interval
        return [RegisterCoordinator(self.coordinator_record())]

    def join(self, coordinator: CoordinatorRecord, now: float) -> list[Effect]:
        """The director named the coordinator: dial it (the shell does) and ask to join."""
        self.coordinator = coordinator.node_id
        self.coordinator_address = coordinator.public_address
        self._coordinator_since = now
        self.term = max(self.term, coordinator.term)
        self.log.info(
            "join.started", coordinator=coordinator.node_id, address=coordinator.public_address
        )
        return []

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
                handover = UpdateCoordinator(successor.node_id, self.term, successor.public_address)
                effects.extend(Send(peer, handover) for peer in self.peers)
            else:
                self.log.info("discussion.ended", messages=len(self.history))
                effects.append(UnregisterCoordinator(self.term))
        for peer in self.peers:
            effects.append(Send(peer, Leave(self.node_id, self.term)))
        self.log.info("node.leaving", peers=len(self.peers))
        return effects

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
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat_interval
            beat = Heartbeat(self.node_id, self.term, self.delivered_clock())
            effects.extend(Send(peer, beat) for peer in self.peers)
            if self.role is Role.COORDINATOR:
                effects.extend(self._expire_members(now))
            elif (
                self.role is Role.MEMBER
                and self.candidacy is None
                and self._coordinator_silent(now)
            ):
                self.log.warning("coordinator.suspected", coordinator=self.coordinator)
                effects.extend(self._stand_for_election(now))
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

    def director_refused(self, current: CoordinatorRecord, now: float) -> list[Effect]:
        """The director holds another coordinator: yield to it, or outrank it."""
        if current.node_id == self.node_id or self.role is not Role.COORDINATOR:
            return []
        self.log.warning("director.refused", holder=current.node_id, holder_term=current.term)
        self._max_term = max(self._max_term, current.term)
        if current.term > self.term or self.rank(current.node_id) > self.rank(self.node_id):
            claim = UpdateCoordinator(current.node_id, current.term, current.public_address)
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
        clock = dict(self.buffer.delivered)
        clock[self.node_id] = clock.get(self.node_id, 0) + 1
        message = self.identity.sign(self.me.name, timestamp, text, clock)
        effects = self._accept(message, source=None)
        self.log.info("message.sent", id=message.id, length=size)
        return message, effects

    # Peer events -----------------------------------------------------------------------

    def peer_connected(self, hello: Hello, now: float) -> list[Effect]:
        """A peer finished the handshake (its identity and secret are proven)."""
        peer = hello.node_id
        self.peers[peer] = hello
        self.last_heard[peer] = now
        self.log.info("peer.connected", peer=peer, peer_name=hello.name)
        effects: list[Effect] = []
        if self.role is Role.JOINING and peer == self.coordinator:
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
        effects.append(Send(peer, Heartbeat(self.node_id, self.term, self.delivered_clock())))
        return effects

    def peer_disconnected(self, peer: str, now: float) -> list[Effect]:
        if self.peers.pop(peer, None) is not None:
            self.log.info("peer.disconnected", peer=peer)
        self._last_request.pop(peer, None)
        return []

    def frame_received(self, peer: str, frame: Frame, now: float) -> list[Effect]:
        """A frame from an authenticated peer. Refusals are logged and change nothing."""
        self.last_heard[peer] = now
        match frame:
            case Message():
                return self._on_message(peer, frame)
            case Heartbeat():
                return self._on_heartbeat(peer, frame, now)
            case DiscussionRequest():
                return self._send_discussion(peer, frame.vector_clock)
            case Discussion():
                return self._on_discussion(peer, frame)
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
            case Hello() | Auth():
                return self._refuse(peer, frame, "handshake frame after the handshake")
        raise AssertionError(f"unhandled frame {frame!r}")  # pragma: no cover

    # Handlers --------------------------------------------------------------------------

    def _refuse(self, peer: str, frame: Frame, reason: str) -> list[Effect]:
        self.log.warning("frame.refused", peer=peer, type=frame.TYPE, reason=reason)
        return []

    def _on_message(self, peer: str, message: Message) -> list[Effect]:
        if message.id in self.buffer:
            self.counters["messages.duplicate"] += 1
            return []
        problem = self._check_message(message, peer)
        if problem is not None:
            self.log.warning(
                "message.refused", peer=peer, id=message.id[:MAX_ID_CHARS], reason=problem
            )
            return []
        return self._accept(message, source=peer)

    def _check_message(self, message: Message, peer: str) -> str | None:
        if len(message.id) > MAX_ID_CHARS or len(message.name) > MAX_NAME_CHARS:
            return "id or name too long"
        if len(message.message.encode("utf-8", "surrogatepass")) > self.config.max_text_bytes:
            return "text over the size limit"
        if len(message.timestamp) > 40:
            return "timestamp too long"
        clock = message.vector_clock
        if clock.get(message.node_id, 0) < 1 or any(c < 0 for c in clock.values()):
            return "vector clock does not count the origin or has a negative entry"
        # Straight from its origin, the authenticated link proves who sent it; a relay (or
        # a state transfer) must carry the origin's signature. Verifying costs ~100 µs.
        if peer != message.node_id and not identity.verify(message):
            return "signature does not match node-id"
        if message.id != identity.message_id(message.node_id, clock[message.node_id]):
            return "id is not derived from its origin and sequence number"
        if self.buffer.is_stale(message):
            return "sequence number already used by its origin"
        return None

    def _accept(self, message: Message, source: str | None) -> list[Effect]:
        """Take a new, checked message: relay it once, deliver what became deliverable."""
        effects: list[Effect] = []
        targets = self._relay_targets() - self._already_sent_by(source) - {message.node_id}
        effects.extend(Send(peer, message) for peer in sorted(targets))
        self.counters["messages.relayed"] += len(effects)
        for delivered in self.buffer.offer(message):
            self.history.add(delivered)
            effects.append(Deliver(delivered))
        self.counters["messages.delivered"] = len(self.history)
        self.counters["messages.held"] = self.buffer.held
        return effects

    def _already_sent_by(self, source: str | None) -> set[str]:
        """Peers that ``source`` relayed the message to itself, by the same rule as ours:
        its overlay neighbours and the coordinator. In a full mesh a message that came
        straight from its origin is relayed no further. Whoever still misses it (a link
        down, views that differ during a change) gets it from anti-entropy."""
        if source is None:
            return set()
        sent = {source, *self.overlay.get(source, ())}
        if self.coordinator is not None:
            sent.add(self.coordinator)
        return sent

    def _relay_targets(self) -> set[str]:
        targets = set(self.neighbours())
        if self.coordinator is not None and self.role is not Role.COORDINATOR:
            targets.add(self.coordinator)
        if not targets:  # not placed in the overlay yet: whoever we are linked to
            targets = set(self.peers)
        return targets & set(self.peers)

    def _on_heartbeat(self, peer: str, beat: Heartbeat, now: float) -> list[Effect]:
        if beat.node_id != peer:
            return self._refuse(peer, beat, "node-id is not the sender")
        effects: list[Effect] = []
        if beat.term < self.term:
            effects.extend(self._fence(peer, now))
        return effects + self._compare_digest(peer, beat, now)

    def _compare_digest(self, peer: str, beat: Heartbeat, now: float) -> list[Effect]:
        if self.role is Role.JOINING and not self.has_joined:
            return []  # the join brings the whole history; asking too would fetch it twice
        mine = self.buffer.delivered
        behind = any(count > mine.get(node, 0) for node, count in beat.digest.items())
        if not behind:
            return []
        last = self._last_request.get(peer)
        if last is not None and now - last < self.config.repair_interval:
            return []  # an answer may still be on its way
        self._last_request[peer] = now
        self.log.info("repair.requested", peer=peer)
        return [Send(peer, DiscussionRequest(self.delivered_clock()))]

    def _send_discussion(self, peer: str, clock: dict[str, int]) -> list[Effect]:
        missing = self.history.since(clock)
        if missing:
            self.log.info("repair.sent", peer=peer, messages=len(missing))
        return [
            Send(peer, Discussion(chunk))
            for chunk in chunk_messages(missing, self.config.discussion_chunk_bytes)
        ]

    def _on_discussion(self, peer: str, frame: Discussion) -> list[Effect]:
        effects: list[Effect] = []
        for message in frame.messages:
            effects.extend(self._on_message(peer, message))
        return effects

    def _on_join(self, peer: str, frame: Join, now: float) -> list[Effect]:
        hello = self.peers.get(peer)
        if self.role is not Role.COORDINATOR or hello is None:
            return self._refuse(peer, frame, "not the coordinator")
        self.members[peer] = MemberRecord(
            node_id=peer,
            name=hello.name,
            address=hello.address,
            public_address=hello.public_address,
            priority=hello.priority,
        )
        self._admitted[peer] = now
        self.log.info(
            "member.joined", member=peer, member_name=hello.name, members=len(self.members)
        )
        # History first, then membership: the newcomer is complete when it becomes a member.
        effects = self._send_discussion(peer, frame.vector_clock)
        effects.extend(self._membership_changed())
        return effects

    def _on_leave(self, peer: str, frame: Leave) -> list[Effect]:
        if frame.node_id != peer:
            return self._refuse(peer, frame, "node-id is not the sender")
        self.log.info("peer.left", peer=peer)
        effects: list[Effect] = [Disconnect(peer, "left")]
        if self.role is Role.COORDINATOR and peer in self.members:
            del self.members[peer]
            self.log.info("member.left", member=peer, members=len(self.members))
            effects.extend(self._membership_changed())
        return effects

    def _on_nodes(self, peer: str, frame: Nodes, now: float) -> list[Effect]:
        if frame.coordinator != peer:
            return self._refuse(peer, frame, "nodes not sent by the coordinator it names")
        if self.role is Role.LEAVING:
            return []
        effects: list[Effect] = []
        if frame.term < self.term or (frame.term == self.term and peer != self.coordinator):
            # Same-term rivals settle through update-coordinator, never through nodes.
            return self._refuse(peer, frame, "nodes of an older term or another coordinator")
        if frame.term > self.term:
            claim = UpdateCoordinator(peer, frame.term, self.peers[peer].public_address)
            effects.extend(self._adopt(claim, source=peer, now=now))
        elif (frame.term, frame.version) <= self._nodes_seen:
            return []  # a late copy of a membership we already hold
        self._nodes_seen = (frame.term, frame.version)
        before = set(self.members)
        self.members = {m.node_id: m for m in frame.node}
        self.overlay = {node: list(peers) for node, peers in frame.neighbours.items()}
        listed = self.node_id in self.members
        if self.role is Role.JOINING and listed:
            self.role = Role.MEMBER
            self.has_joined = True
            self.log.info("join.completed", members=len(self.members), messages=len(self.history))
            if self._outranks(peer):  # a higher node joining or returning takes over
                effects.extend(self._stand_for_election(now))
        elif self.role is Role.MEMBER and not listed:
            # The coordinator took us for dead (we were paused or cut off): join again.
            self.role = Role.JOINING
            self.log.warning("member.dropped", coordinator=peer)
            effects.append(Send(peer, Join(self.delivered_clock())))
        self.log.info("membership.updated", members=len(self.members), neighbours=self.neighbours())
        return effects + self._drop_departed(before)

    def _on_update_coordinator(
        self, peer: str, frame: UpdateCoordinator, now: float
    ) -> list[Effect]:
        if self.role is Role.LEAVING:
            return []
        if frame.coordinator == self.coordinator and frame.term == self.term:
            return []
        if not self._claim_wins(frame):
            self._refuse(peer, frame, "an older term or a lower coordinator")
            return self._fence(peer, now)
        return self._adopt(frame, source=peer, now=now)

    # Elections ---------------------------------------------------------------------------

    def _claim_wins(self, claim: UpdateCoordinator) -> bool:
        """Whether a coordinator claim beats what this node holds (newer term, or the
        same term by a higher node)."""
        if claim.term != self.term:
            return claim.term > self.term
        return self.coordinator is None or self.rank(claim.coordinator) > self.rank(
            self.coordinator
        )

    def _adopt(self, claim: UpdateCoordinator, source: str | None, now: float) -> list[Effect]:
        """Follow a winning claim; flood it on; stand if we outrank its coordinator."""
        was_coordinator = self.role is Role.COORDINATOR
        previous = self.coordinator
        self.term = claim.term
        self._max_term = max(self._max_term, claim.term)
        self.coordinator = claim.coordinator
        self.coordinator_address = claim.address or self.coordinator_address
        self._coordinator_since = now
        self.candidacy = None
        self.log.info("term.changed", coordinator=claim.coordinator, previous=previous)
        effects: list[Effect] = [
            Send(p, claim) for p in self.peers if p not in (source, claim.coordinator)
        ]
        if claim.coordinator == self.node_id:  # a leaving coordinator named us
            if source is not None and source == previous:
                self.members.pop(source, None)
            return effects + self._become_coordinator(claim.term, now, "handover")
        if was_coordinator:
            self.role = Role.MEMBER if self.node_id in self.members else Role.JOINING
            self.log.warning("coordinator.deposed", by=claim.coordinator)
        if self._outranks(claim.coordinator):
            effects.extend(self._stand_for_election(now))
        return effects

    def _outranks(self, coordinator: str) -> bool:
        """Whether this node must bully ``coordinator``: it is a member we know (an unknown
        one's priority is unknown: follow it, join, and judge once listed) and ranks lower."""
        return (
            self.has_joined
            and coordinator in self.members
            and self.node_id in self.members
            and self.rank(self.node_id) > self.rank(coordinator)
        )

    def _stand_for_election(self, now: float) -> list[Effect]:
        term = max(self.term, self._max_term) + 1
        self._max_term = term
        higher = self._higher_members()
        self.log.info("election.started", candidate_term=term, higher=len(higher))
        if not higher:
            return self._become_coordinator(term, now, "highest live node")
        self.candidacy = Candidacy(term, Phase.VOTING, now + self.config.election_timeout)
        ask = Election(self.node_id, term)
        return [Send(peer, ask) for peer in sorted(higher) if peer in self.peers]

    def _on_election(self, peer: str, frame: Election, now: float) -> list[Effect]:
        if frame.node_id != peer or peer not in self.members:
            return self._refuse(peer, frame, "not a member")
        if self.rank(peer) > self.rank(self.node_id) or self.role is Role.LEAVING:
            return []
        self._max_term = max(self._max_term, frame.term)
        effects: list[Effect] = [Send(peer, Vote(True, frame.term, self.node_id))]
        if self.role is Role.COORDINATOR:
            if frame.term >= self.term:  # reassert over the candidate's term
                effects.extend(self._become_coordinator(self._max_term + 1, now, "reasserted"))
            else:
                effects.extend(self._fence(peer, now))
        elif self.candidacy is None:
            effects.extend(self._stand_for_election(now))
        return effects

    def _on_vote(self, peer: str, frame: Vote, now: float) -> list[Effect]:
        if peer not in self.members or frame.node_id not in ("", peer):
            return self._refuse(peer, frame, "not a member")
        candidacy = self.candidacy
        if candidacy is None or frame.term != candidacy.term or not frame.ok:
            return []
        if self.rank(peer) > self.rank(self.node_id):
            self.log.info("election.outvoted", by=peer)
            candidacy.outvoted(now, self.config.announce_timeout)
        return []

    def _become_coordinator(self, term: int, now: float, reason: str) -> list[Effect]:
        previous = self.coordinator
        if previous not in (None, self.node_id) and self._coordinator_silent(now):
            self.members.pop(previous, None)  # taken for dead: the new term starts without it
        self.role = Role.COORDINATOR
        self.has_joined = True
        self.term = term
        self._max_term = max(self._max_term, term)
        self.coordinator = self.node_id
        self._coordinator_since = now
        self.candidacy = None
        self.members[self.node_id] = self.me
        self._admitted = {member: now for member in self.members}
        self._next_register = now + self.config.director_interval
        self.log.info("coordinator.elected", reason=reason, members=len(self.members))
        claim = UpdateCoordinator(self.node_id, term, self.me.public_address)
        effects: list[Effect] = [Send(peer, claim) for peer in self.peers]
        effects.extend(self._membership_changed())
        effects.append(RegisterCoordinator(self.coordinator_record()))
        return effects

    def _fence(self, peer: str, now: float) -> list[Effect]:
        """Tell a peer living in an older term who coordinates now (at most once a beat)."""
        last = self._last_fence.get(peer)
        if self.coordinator is None or (
            last is not None and now - last < self.config.heartbeat_interval
        ):
            return []
        self._last_fence[peer] = now
        address = (
            self.members[self.coordinator].public_address
            if self.coordinator in self.members
            else self.coordinator_address or ""
        )
        return [Send(peer, UpdateCoordinator(self.coordinator, self.term, address))]

    # Failure detection -----------------------------------------------------------------

    def _coordinator_silent(self, now: float) -> bool:
        if self.coordinator is None or self.coordinator == self.node_id:
            return False
        heard = max(self.last_heard.get(self.coordinator, 0.0), self._coordinator_since)
        return now - heard > self.config.failure_timeout

    def _forgive_silence(self, now: float) -> None:
        for peer in self.last_heard:
            self.last_heard[peer] = now
        self._coordinator_since = now
        self._admitted = {member: now for member in self._admitted}

    def _expire_members(self, now: float) -> list[Effect]:
        """The coordinator drops members silent for ``failure_timeout``."""
        dead = [
            member
            for member in self.members
            if member != self.node_id
            and now - max(self.last_heard.get(member, 0.0), self._admitted.get(member, now))
            > self.config.failure_timeout
        ]
        if not dead:
            return []
        for member in dead:
            del self.members[member]
            self._admitted.pop(member, None)
            self.log.warning("member.failed", member=member, members=len(self.members))
        return self._membership_changed() + [
            Disconnect(m, "taken for dead") for m in dead if m in self.peers
        ]

    def _membership_changed(self) -> list[Effect]:
        self._membership_version += 1
        self.overlay = assign(self.members, self.config.full_mesh_max)
        frame = self._nodes_frame()
        return [Send(peer, frame) for peer in self.peers if peer in self.members]

    def _drop_departed(self, before: set[str]) -> list[Effect]:
        """Close links to peers that were members and no longer are."""
        gone = (before - set(self.members)) & set(self.peers)
        return [Disconnect(peer, "no longer a member") for peer in sorted(gone)]

    def _nodes_frame(self) -> Nodes:
        return Nodes(
            node=sorted(self.members.values(), key=lambda m: m.node_id),
            neighbours=self.overlay,
            term=self.term,
            coordinator=self.node_id,
            version=self._membership_version,
        )
