"""Who is in the discussion: the members, their overlay, and their names.

- The coordinator admits (``join``) and removes members (``leave``, or silence for
  ``failure_timeout``, ``chatd.core.liveness``), and after every change sends ``nodes``
  (versioned within its term) to every linked member. ``nodes`` is taken only from the
  coordinator of the current term; a late copy of a version already held is ignored.
- Names: a node renames itself at once (its messages carry the new name); the coordinator
  renames a member only on that member's own ``rename`` (its authenticated link), at most
  ``rename_burst`` at once then ``rename_rate`` a second, and says so in ``nodes``. A
  member listed under another name than its own asks again, at most every
  ``rename_retry``. Presence events are derived from the membership (chatd.core.presence);
  ``nodes.departed`` says which removed members left and which were taken for dead.
- Rank: ``(reachable, priority, node-id)``, highest coordinates (the bully election,
  ``chatd.core.election``). A reachable node (the director could dial it back) outranks
  every dial-out-only one (behind NAT), whatever their priorities: newcomers must be able
  to dial the coordinator. A dial-out-only node coordinates only while no reachable node
  is a member, and hands over to the first that joins.
- The overlay attaches dial-out-only members to reachable ones (``chatd.core.overlay``);
  two dial-out-only members that the director saw come from one address (one NAT) share
  a home and are linked too, over their advertised (LAN) addresses.
"""

from __future__ import annotations

import attrs

from chat.names import name_problem
from chat.wire import Join, Leave, MemberRecord, Nodes, Rename
from chat.wire.bounds import MAX_MEMBERS
from chatd.config import Config
from chatd.core.abuse import TokenBucket
from chatd.core.effects import Announce, Disconnect, Effect, NodeError, Role, Send
from chatd.core.links import Links
from chatd.core.overlay import assign
from chatd.core.presence import Roster
from chatd.core.recorder import Recorder
from chatd.core.standing import Standing

Rank = tuple[bool, int, str]  # (reachable, priority, node-id): the highest live coordinates


def home_of(member: MemberRecord) -> str | None:
    """The home of a dial-out-only member: the address the director saw it come from (its
    NAT's), or None when that is unknown or the member can be dialed."""
    if member.reachable or not member.observed_address:
        return None
    return member.observed_address


class Membership:
    def __init__(
        self, me: MemberRecord, config: Config, standing: Standing, links: Links, log: Recorder
    ) -> None:
        self.me = me
        self.config = config
        self.standing = standing
        self.links = links
        self.log = log
        self.members: dict[str, MemberRecord] = {}
        self.overlay: dict[str, list[str]] = {}
        # Why the members the coordinator removed went (the newest MAX_MEMBERS; an entry
        # goes when its node joins again); as a member, what the latest ``nodes`` said.
        self.departed: dict[str, str] = {}
        self._version = 0  # as coordinator: changes made in this term
        self._nodes_seen = (0, 0)  # (term, version) of the latest ``nodes`` taken
        self.roster = Roster()  # what clients were last told of the membership
        self._renames: dict[str, TokenBucket] = {}  # as coordinator: per member
        self._rename_bucket = TokenBucket(config.rename_rate, config.rename_burst)
        self._next_rename_assert = 0.0

    # Queries -------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.me.node_id

    def neighbours(self) -> list[str]:
        return self.overlay.get(self.node_id, [])

    def rank(self, node_id: str) -> Rank:
        """A node's rank; one we hold no record of is taken as reachable, priority 0."""
        member = self.me if node_id == self.node_id else self.members.get(node_id)
        if member is None:
            return (True, 0, node_id)
        return (member.reachable, member.priority, node_id)

    def reachable(self, node_id: str) -> bool:
        member = self.me if node_id == self.node_id else self.members.get(node_id)
        return member is None or member.reachable

    def same_home(self, node_id: str) -> bool:
        """Whether a member is dial-out-only in this node's own home network."""
        member, mine = self.members.get(node_id), home_of(self.me)
        return member is not None and mine is not None and home_of(member) == mine

    def assign(self) -> None:
        """The overlay of the current members (as coordinator)."""
        members = self.members.values()
        self.overlay = assign(
            self.members,
            self.config.full_mesh_max,
            {m.node_id for m in members if not m.reachable},
            {m.node_id: home for m in members if (home := home_of(m)) is not None},
        )

    def higher(self) -> set[str]:
        """The members that outrank this node."""
        mine = self.rank(self.node_id)
        return {m for m in self.members if m != self.node_id and self.rank(m) > mine}

    def coordinator_address(self) -> str | None:
        """Where to reach the coordinator: its member record, else what a claim or the
        director said."""
        coordinator = self.standing.coordinator
        if coordinator in self.members:
            return self.members[coordinator].public_address
        return self.standing.coordinator_address

    def nodes_frame(self) -> Nodes:
        return Nodes(
            node=sorted(self.members.values(), key=lambda m: m.node_id),
            neighbours=self.overlay,
            term=self.standing.term,
            coordinator=self.node_id,
            version=self._version,
            departed=dict(self.departed),
        )

    # Changes as coordinator ------------------------------------------------------------

    def found(self) -> None:
        """A new discussion: this node alone."""
        self.members = {self.node_id: self.me}
        self.assign()

    def seat_self(self) -> None:
        self.members[self.node_id] = self.me

    def remove(self, member: str, reason: str) -> bool:
        """Take ``member`` out, noting why for ``nodes.departed`` (the newest MAX_MEMBERS)."""
        if self.members.pop(member, None) is None:
            return False
        self.departed.pop(member, None)
        self.departed[member] = reason
        self._renames.pop(member, None)
        while len(self.departed) > MAX_MEMBERS:
            del self.departed[next(iter(self.departed))]
        return True

    def changed(self) -> list[Effect]:
        """As coordinator after a change: a new version of ``nodes`` to every member."""
        self._version += 1
        self.assign()
        frame = self.nodes_frame()
        peers = self.links.peers
        effects: list[Effect] = [Send(peer, frame) for peer in peers if peer in self.members]
        return effects + self.observe()

    def admit(self, peer: str, frame: Join, now: float) -> list[Effect] | None:
        """A ``join``: None when ``peer`` is now a member, else the refusal's effects."""
        hello = self.links.peers.get(peer)
        if self.standing.role is not Role.COORDINATOR or hello is None:
            return self.links.refuse(peer, frame.TYPE, "not the coordinator", now, hard=False)
        if peer in self.links.banned:
            return self.links.ban(peer, "banned from this discussion")
        if peer not in self.members and len(self.members) >= MAX_MEMBERS:
            full = f"the discussion is full ({MAX_MEMBERS} members)"
            self.links.refuse(peer, frame.TYPE, full, now, hard=False)
            return [Disconnect(peer, "the discussion is full")]
        self.members[peer] = MemberRecord(
            node_id=peer,
            name=hello.name,
            address=hello.address,
            public_address=hello.public_address,
            priority=hello.priority,
            reachable=hello.reachable,
            observed_address=hello.observed_address,
        )
        self.departed.pop(peer, None)
        self.log.info(
            "member.joined", member=peer, member_name=hello.name, members=len(self.members)
        )
        return None

    def on_leave(self, peer: str, frame: Leave, now: float) -> list[Effect]:
        if frame.node_id != peer:
            return self.links.refuse(peer, frame.TYPE, "node-id is not the sender", now)
        self.log.info("peer.left", peer=peer)
        effects: list[Effect] = [Disconnect(peer, "left")]
        if self.standing.role is Role.COORDINATOR and self.remove(peer, "left"):
            self.log.info("member.left", member=peer, members=len(self.members))
            effects.extend(self.changed())
        return effects

    def expire(self, dead: list[str]) -> list[Effect]:
        """As coordinator: drop members taken for dead."""
        if not dead:
            return []
        for member in dead:
            self.remove(member, "timed-out")
            self.log.warning("member.failed", member=member, members=len(self.members))
        return self.changed() + [
            Disconnect(m, "taken for dead") for m in dead if m in self.links.peers
        ]

    # ``nodes`` as a member ---------------------------------------------------------------

    def on_nodes(self, peer: str, frame: Nodes, now: float) -> tuple[list[Effect], set[str] | None]:
        """Take a ``nodes``: (refusal effects, None), or ([], the members before)."""
        if frame.coordinator != peer:
            reason = "nodes not sent by the coordinator it names"
            return self.links.refuse(peer, frame.TYPE, reason, now), None
        standing = self.standing
        if standing.role is Role.LEAVING:
            return [], None
        if frame.term != standing.term or peer != standing.coordinator:
            # Only the coordinator of our term lists members; a new coordinator's claim
            # (update-coordinator) always comes first on its link. A late copy from a former
            # coordinator is harmless.
            reason = "nodes from a node that is not the coordinator of this term"
            hard = frame.term > standing.term
            return self.links.refuse(peer, frame.TYPE, reason, now, hard=hard), None
        if (frame.term, frame.version) <= self._nodes_seen:
            return [], None  # a late copy of a membership we already hold
        self._nodes_seen = (frame.term, frame.version)
        before = set(self.members)
        self.members = {m.node_id: m for m in frame.node}
        self.departed = dict(frame.departed)
        self.overlay = {node: list(peers) for node, peers in frame.neighbours.items()}
        return [], before

    def settled(self, before: set[str], now: float) -> list[Effect]:
        """After a ``nodes`` was taken (and the role followed it): tell clients, ask for
        our name, close links to peers no longer members."""
        self.log.info("membership.updated", members=len(self.members), neighbours=self.neighbours())
        effects = self.observe() + self.assert_name(now)
        gone = (before - set(self.members)) & set(self.links.peers)
        return effects + [Disconnect(peer, "no longer a member") for peer in sorted(gone)]

    def observe(self) -> list[Effect]:
        """Presence events for what changed in the membership since clients were last told
        (chatd.core.presence); nothing while this node is not in the discussion."""
        if not self.standing.ready:
            return []
        events = self.roster.update(
            {m: r.name for m, r in self.members.items()}, self.standing.coordinator, self.departed
        )
        for event in events:
            self.log.info(
                "presence", presence=event.event, member=event.node_id, member_name=event.name
            )
        return [Announce(event) for event in events]

    def set_reachable(self, reachable: bool, observed_address: str) -> list[Effect]:
        """Whether peers can dial this node, and where the director saw it come from; a
        coordinator lists the change."""
        if (reachable, observed_address) == (self.me.reachable, self.me.observed_address):
            return []
        self.log.info("node.reachability", reachable=reachable, observed=observed_address)
        self.me = attrs.evolve(self.me, reachable=reachable, observed_address=observed_address)
        if self.standing.role is Role.COORDINATOR:
            self.members[self.node_id] = self.me
            return self.changed()
        return []

    # Names -------------------------------------------------------------------------------

    def rename(self, name: str, now: float) -> list[Effect]:
        """Take ``name`` from now on; raises ``NodeError`` if refused."""
        if (problem := name_problem(name)) is not None:
            raise NodeError("bad-request", problem)
        if self.standing.role is Role.LEAVING:
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
        if self.standing.role is Role.COORDINATOR:
            self.members[self.node_id] = self.me
            return self.changed()
        self._next_rename_assert = now
        return self.assert_name(now)

    def on_rename(self, peer: str, frame: Rename, now: float) -> list[Effect]:
        """A member renames itself (its link is authenticated, so only itself)."""
        if self.standing.role is not Role.COORDINATOR:
            return self.links.refuse(peer, frame.TYPE, "not the coordinator", now, hard=False)
        record = self.members.get(peer)
        if record is None:
            return self.links.refuse(peer, frame.TYPE, "not a member", now, hard=False)
        bucket = self._renames.setdefault(
            peer, TokenBucket(self.config.rename_rate, self.config.rename_burst)
        )
        if not bucket.allow(now):
            return self.links.refuse(peer, frame.TYPE, "renames too often", now, hard=False)
        if record.name == frame.name:
            return [Send(peer, self.nodes_frame())]  # it holds a stale membership
        self.members[peer] = attrs.evolve(record, name=frame.name)
        if (hello := self.links.peers.get(peer)) is not None:
            self.links.peers[peer] = attrs.evolve(hello, name=frame.name)  # for a later join
        self.log.info("member.renamed", member=peer, member_name=frame.name, old=record.name)
        return self.changed()

    def assert_name(self, now: float) -> list[Effect]:
        """As a member listed under another name than its own (a rename lost with a
        coordinator, or refused as too frequent), ask the coordinator again, at most once
        per rename_retry."""
        record = self.members.get(self.node_id)
        coordinator = self.standing.coordinator
        if (
            self.standing.role is not Role.MEMBER
            or record is None
            or record.name == self.me.name
            or now < self._next_rename_assert
            or coordinator is None
            or coordinator not in self.links.peers
        ):
            return []
        self._next_rename_assert = now + self.config.rename_retry
        return [Send(coordinator, Rename(self.me.name))]
