"""Membership and coordination: joins, leaves, ``nodes``, the bully election, fencing,
and failure detection. The rules are at the top of ``chatd.core.node``."""

from __future__ import annotations

import attrs

from chat import identity
from chat.wire import (
    Election,
    Join,
    Leave,
    MemberRecord,
    Nodes,
    Rename,
    UpdateCoordinator,
    Vote,
)
from chat.wire.bounds import MAX_MEMBERS, MAX_TERM
from chatd.core.abuse import TokenBucket
from chatd.core.effects import Disconnect, Effect, RegisterCoordinator, Role, Send
from chatd.core.election import Candidacy, Phase
from chatd.core.overlay import assign
from chatd.core.state import NodeState


class Coordination(NodeState):
    def _on_join(self, peer: str, frame: Join, now: float) -> list[Effect]:
        hello = self.peers.get(peer)
        if self.role is not Role.COORDINATOR or hello is None:
            return self._refuse(peer, frame, "not the coordinator", hard=False)
        if peer in self.banned:
            return self._ban(peer, "banned from this discussion")
        if peer not in self.members and len(self.members) >= MAX_MEMBERS:
            self._refuse(peer, frame, f"the discussion is full ({MAX_MEMBERS} members)", hard=False)
            return [Disconnect(peer, "the discussion is full")]
        self.members[peer] = MemberRecord(
            node_id=peer,
            name=hello.name,
            address=hello.address,
            public_address=hello.public_address,
            priority=hello.priority,
        )
        self._admitted[peer] = now
        self.departed.pop(peer, None)
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
            self._departs(peer, "left")
            self.log.info("member.left", member=peer, members=len(self.members))
            effects.extend(self._membership_changed())
        return effects

    def _on_nodes(self, peer: str, frame: Nodes, now: float) -> list[Effect]:
        if frame.coordinator != peer:
            return self._refuse(peer, frame, "nodes not sent by the coordinator it names")
        if self.role is Role.LEAVING:
            return []
        effects: list[Effect] = []
        if frame.term != self.term or peer != self.coordinator:
            # Only the coordinator of our term lists members; a new coordinator's claim
            # (update-coordinator) always comes first on its link. A late copy from a former
            # coordinator is harmless.
            return self._refuse(
                peer,
                frame,
                "nodes from a node that is not the coordinator of this term",
                hard=frame.term > self.term,
            )
        if (frame.term, frame.version) <= self._nodes_seen:
            return []  # a late copy of a membership we already hold
        self._nodes_seen = (frame.term, frame.version)
        before = set(self.members)
        self.members = {m.node_id: m for m in frame.node}
        self.departed = dict(frame.departed)
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
            self._discussion_expected[peer] = now + self.config.join_timeout
            effects.append(Send(peer, Join(self.delivered_clock())))
        self.log.info("membership.updated", members=len(self.members), neighbours=self.neighbours())
        effects.extend(self._observe())
        effects.extend(self._assert_name(now))
        return effects + self._drop_departed(before)

    def _on_rename(self, peer: str, frame: Rename, now: float) -> list[Effect]:
        """A member renames itself (its link is authenticated, so only itself)."""
        if self.role is not Role.COORDINATOR:
            return self._refuse(peer, frame, "not the coordinator", hard=False)
        record = self.members.get(peer)
        if record is None:
            return self._refuse(peer, frame, "not a member", hard=False)
        bucket = self._renames.setdefault(
            peer, TokenBucket(self.config.rename_rate, self.config.rename_burst)
        )
        if not bucket.allow(now):
            return self._refuse(peer, frame, "renames too often", hard=False)
        if record.name == frame.name:
            return [Send(peer, self._nodes_frame())]  # it holds a stale membership
        self.members[peer] = attrs.evolve(record, name=frame.name)
        if (hello := self.peers.get(peer)) is not None:
            self.peers[peer] = attrs.evolve(hello, name=frame.name)  # for a later join
        self.log.info("member.renamed", member=peer, member_name=frame.name, old=record.name)
        return self._membership_changed()

    def _assert_name(self, now: float) -> list[Effect]:
        """As a member listed under another name than its own (a rename lost with a
        coordinator, or refused as too frequent), ask the coordinator again, at most once
        per rename_retry."""
        record = self.members.get(self.node_id)
        if (
            self.role is not Role.MEMBER
            or record is None
            or record.name == self.me.name
            or now < self._next_rename_assert
            or self.coordinator is None
            or self.coordinator not in self.peers
        ):
            return []
        self._next_rename_assert = now + self.config.rename_retry
        return [Send(self.coordinator, Rename(self.me.name))]

    def _on_update_coordinator(
        self, peer: str, frame: UpdateCoordinator, now: float
    ) -> list[Effect]:
        if self.role is Role.LEAVING:
            return []
        if frame.coordinator == self.coordinator and frame.term == self.term:
            own = frame.signer == frame.coordinator and frame != self.claim
            if own and identity.verify_claim(frame):
                self.claim = frame  # prefer the coordinator's own word to a hand-over's
            return []
        problem = self._check_claim(frame)
        if problem is not None:
            return self._refuse(peer, frame, problem)
        if not self._claim_wins(frame):
            self._refuse(peer, frame, "an older term or a lower coordinator", hard=False)
            return self._fence(peer, now)
        if self._outranks(frame.coordinator):
            # Bully: a lower node claims while we live. We never follow it, not even for a
            # moment: we stand above its term, at most once per election_timeout for each
            # claimant (each stand is an election).
            last = self._last_claim_by.get(frame.signer)
            if last is not None and now - last < self.config.election_timeout:
                self._refuse(peer, frame, "a lower node claims too often", hard=False)
                return self._fence(peer, now)  # it hears whom we follow; it claims again
            self._last_claim_by[frame.signer] = now
            self._max_term = max(self._max_term, frame.term)
            self.log.info("claim.outranked", claimant=frame.coordinator, claim_term=frame.term)
            return [] if self.candidacy is not None else self._stand_for_election(now)
        return self._adopt(frame, source=peer, now=now)

    def _check_claim(self, claim: UpdateCoordinator) -> str | None:
        """Why no honest node would make ``claim``, or None."""
        if not self._term_is_sane(claim.term):
            return "term far above any seen"
        handover = claim.signer == self.coordinator and claim.signer != claim.coordinator
        if claim.signer != claim.coordinator and not handover:
            return "claim not signed by its coordinator or ours"
        if not identity.verify_claim(claim):
            return "claim signature does not match its signer"
        return None

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
        self.claim = claim if claim.signature else None
        self.log.info("term.changed", coordinator=claim.coordinator, previous=previous)
        # Flood a signed claim on (one learnt from the director is unsigned: not ours to pass).
        effects: list[Effect] = [
            Send(p, claim)
            for p in self.peers
            if claim.signature and p not in (source, claim.coordinator)
        ]
        if claim.coordinator == self.node_id:  # a leaving coordinator named us
            if source is not None and source == previous:
                self.members.pop(source, None)
                self._departs(source, "left")
            return effects + self._become_coordinator(claim.term, now, "handover")
        if was_coordinator:
            self.role = Role.MEMBER if self.node_id in self.members else Role.JOINING
            self.log.warning("coordinator.deposed", by=claim.coordinator)
        effects.extend(self._observe())
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
        if term > MAX_TERM:  # unreachable while claims are checked: say so, never overflow
            self.log.error("election.impossible", reason="terms exhausted")
            return []
        self._max_term = term
        higher = self._higher_members()
        if self._coordinator_silent(now):
            # Bully asks every higher node, but waiting on the one taken for dead only
            # costs election_timeout; if it was merely slow it will bully back.
            higher.discard(self.coordinator or "")
        self.log.info("election.started", candidate_term=term, higher=len(higher))
        if not higher:
            return self._become_coordinator(term, now, "highest live node")
        self.candidacy = Candidacy(term, Phase.VOTING, now + self.config.election_timeout)
        ask = Election(self.node_id, term)
        return [Send(peer, ask) for peer in sorted(higher) if peer in self.peers]

    def _on_election(self, peer: str, frame: Election, now: float) -> list[Effect]:
        if frame.node_id != peer or peer not in self.members:
            return self._refuse(peer, frame, "not a member")
        if not self._term_is_sane(frame.term):
            return self._refuse(peer, frame, "term far above any seen")
        if self.rank(peer) > self.rank(self.node_id) or self.role is Role.LEAVING:
            return []
        vote: list[Effect] = [Send(peer, Vote(True, frame.term, self.node_id))]
        last = self._last_election.get(peer)
        if last is not None and now - last < self.config.election_timeout / 2:
            # An honest candidate asks once per candidacy: a burst is abuse, not news. It
            # still gets its vote (we live and outrank it), but sets nothing else going.
            return self._refuse(peer, frame, "elections too often", hard=False) + vote
        self._last_election[peer] = now
        self._max_term = max(self._max_term, frame.term)
        effects = vote
        if self.role is Role.COORDINATOR:
            if frame.term >= self.term:  # reassert over the candidate's term
                effects.extend(self._reassert(now, "reasserted"))
            else:
                effects.extend(self._fence(peer, now))
        elif self.candidacy is None:
            effects.extend(self._stand_for_election(now))
        return effects

    def _reassert(self, now: float, reason: str) -> list[Effect]:
        """As coordinator, take a newer term over a lower claimant or candidate; at most once
        per election_timeout (a candidate that missed it stands again and is answered then)."""
        if now - self._last_reassert < self.config.election_timeout:
            return []
        self._last_reassert = now
        return self._become_coordinator(self._max_term + 1, now, reason)

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
        if (
            previous is not None
            and previous != self.node_id
            and self._coordinator_silent(now)
            and self.members.pop(previous, None) is not None
        ):
            self._departs(previous, "timed-out")  # taken for dead: not in the new term
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
        claim = identity.sign_claim(self.identity, self.node_id, term, self.me.public_address)
        self.claim = claim
        effects: list[Effect] = [Send(peer, claim) for peer in self.peers]
        effects.extend(self._membership_changed())
        effects.append(RegisterCoordinator(self.coordinator_record()))
        return effects

    def _fence(self, peer: str, now: float) -> list[Effect]:
        """Tell a peer living in an older term who coordinates now (at most once a beat)."""
        last = self._last_fence.get(peer)
        claim = self.claim
        if (
            claim is None
            or (claim.coordinator, claim.term) != (self.coordinator, self.term)
            or (last is not None and now - last < self.config.heartbeat_interval)
        ):
            return []
        self._last_fence[peer] = now
        effects: list[Effect] = [Send(peer, claim)]
        if self.role is Role.COORDINATOR and peer in self.members:
            effects.append(Send(peer, self._nodes_frame()))  # it missed our nodes meanwhile
        return effects

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
            self._departs(member, "timed-out")
            self.log.warning("member.failed", member=member, members=len(self.members))
        return self._membership_changed() + [
            Disconnect(m, "taken for dead") for m in dead if m in self.peers
        ]

    def _membership_changed(self) -> list[Effect]:
        self._membership_version += 1
        self.overlay = assign(self.members, self.config.full_mesh_max)
        frame = self._nodes_frame()
        effects: list[Effect] = [Send(peer, frame) for peer in self.peers if peer in self.members]
        return effects + self._observe()

    def _drop_departed(self, before: set[str]) -> list[Effect]:
        """Close links to peers that were members and no longer are."""
        gone = (before - set(self.members)) & set(self.peers)
        return [Disconnect(peer, "no longer a member") for peer in sorted(gone)]
