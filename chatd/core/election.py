"""Who coordinates: this node's role, the terms, the coordinator claims, the bully election.

Rules:
- The role changes only in ``Election.set_role``, as ``TRANSITIONS`` below allows; leaving
  is final.
- Claims are judged by ``chatd.core.terms``; an accepted new claim is flooded to linked
  peers.
- Ranks are ``(reachable, priority, node-id)`` (``chatd.core.membership``): a node peers
  can dial outranks every dial-out-only node (behind NAT), so newcomers can always dial
  the coordinator. A dial-out-only node told to start a discussion (nobody is there)
  coordinates it alone, and the first reachable node that joins bullies it (its rank is
  higher), or, when it cannot dial it, starts above its term at the director
  (``chatd.registration``), which deposes it.
- A member that has not heard the coordinator for ``failure_timeout`` stands for election;
  a higher node that hears an ``election`` answers ``vote`` and stands itself (at most once
  per ``election_timeout / 2`` per candidate; a coordinator reasserts at most once per
  ``election_timeout``); a node that finds a lower coordinator announced stands too (bully).
  ``election`` and ``vote`` are taken from members only.
- A candidate for term ``t`` sends ``election`` to every higher member it is linked to
  (and to each higher member as soon as a link to it comes up) and is ``VOTING`` until
  ``election_timeout``: no ``vote`` by then and it takes term ``t``. A ``vote`` for ``t``
  from a higher member moves it to ``AWAITING`` that node's announcement; none within
  ``announce_timeout`` and it stands again for ``t + 1``. Any accepted coordinator claim
  of a term ≥ ``t`` ends the candidacy.
"""

from __future__ import annotations

import enum
from typing import Literal

from attrs import define

from chat import identity, wire
from chat.identity import Identity
from chat.wire import CoordinatorRecord, Heartbeat, UpdateCoordinator, Vote
from chat.wire.bounds import MAX_TERM
from chatd.config import Config
from chatd.core.effects import Effect, RegisterCoordinator, Role, Send, UnregisterCoordinator
from chatd.core.links import Links
from chatd.core.liveness import Liveness
from chatd.core.membership import Membership
from chatd.core.recorder import Recorder
from chatd.core.standing import Standing
from chatd.core.terms import Terms, Verdict

Cause = Literal["start", "listed", "unlisted", "elected", "deposed", "deposed-unlisted", "leave"]

# (role now, cause) -> the role it becomes. Any other change is a bug: ``set_role`` raises.
TRANSITIONS: dict[tuple[Role, Cause], Role] = {
    (Role.JOINING, "start"): Role.COORDINATOR,  # the director said nobody is here
    (Role.JOINING, "listed"): Role.MEMBER,  # the coordinator's ``nodes`` lists us
    (Role.MEMBER, "unlisted"): Role.JOINING,  # taken for dead: ask to join again
    (Role.JOINING, "elected"): Role.COORDINATOR,  # an election won, or a hand-over
    (Role.MEMBER, "elected"): Role.COORDINATOR,
    (Role.COORDINATOR, "elected"): Role.COORDINATOR,  # a newer term over a challenger
    # A claim of a newer term, or of ours by a higher node, is accepted:
    (Role.COORDINATOR, "deposed"): Role.MEMBER,
    (Role.COORDINATOR, "deposed-unlisted"): Role.JOINING,
    **{(role, "leave"): Role.LEAVING for role in Role},
}


class IllegalTransition(Exception):
    """A role change the table does not allow: a bug of ours, never a peer's doing."""


class Phase(enum.Enum):
    VOTING = "voting"
    AWAITING = "awaiting"


@define
class Candidacy:
    term: int
    phase: Phase
    deadline: float

    def outvoted(self, now: float, announce_timeout: float) -> None:
        if self.phase is not Phase.VOTING:
            return
        self.phase = Phase.AWAITING
        self.deadline = now + announce_timeout


class Election:
    def __init__(
        self,
        ident: Identity,
        config: Config,
        standing: Standing,
        membership: Membership,
        liveness: Liveness,
        links: Links,
        log: Recorder,
    ) -> None:
        self.identity = ident
        self.config = config
        self.standing = standing
        self.membership = membership
        self.liveness = liveness
        self.links = links
        self.log = log
        self.terms = Terms(config, standing, membership, links, log)
        self.candidacy: Candidacy | None = None
        self.next_register = 0.0
        self._last_election: dict[str, float] = {}
        self._last_reassert = float("-inf")

    def set_role(self, cause: Cause) -> None:
        """The one place the role changes, checked against ``TRANSITIONS``."""
        role = TRANSITIONS.get((self.standing.role, cause))
        if role is None:
            raise IllegalTransition(f"a {self.standing.role.value} node cannot be {cause}")
        self.standing.role = role
        if role in (Role.MEMBER, Role.COORDINATOR):
            self.standing.has_joined = True

    # Queries -----------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        return self.membership.node_id

    def record(self) -> CoordinatorRecord:
        me = self.membership.me
        return CoordinatorRecord(me.node_id, me.address, me.public_address, self.standing.term)

    def voting(self) -> bool:
        return self.candidacy is not None and self.candidacy.phase is Phase.VOTING

    def next_deadline(self, deadline: float) -> float:
        if self.standing.role is Role.COORDINATOR:
            deadline = min(deadline, self.next_register)
        if self.candidacy is not None:
            deadline = min(deadline, self.candidacy.deadline)
        coordinator = self.standing.coordinator
        member = self.standing.role is Role.MEMBER and self.candidacy is None
        if member and coordinator is not None and coordinator != self.node_id:
            # When a silent coordinator is suspected (``suspect``): on time, not a beat late.
            deadline = min(deadline, self.liveness.suspect_at(coordinator))
        return deadline

    def coordinator_silent(self, now: float) -> bool:
        coordinator = self.standing.coordinator
        if coordinator is None or coordinator == self.node_id:
            return False
        return self.liveness.silent(coordinator, now)

    # Lifecycle ---------------------------------------------------------------------------

    def start(self, term: int, now: float) -> list[Effect]:
        """Coordinate a new discussion, alone in it."""
        self.membership.found()
        return self.become(max(self.standing.term, term), now, "a new discussion", "start")

    def follow_director(self, coordinator: CoordinatorRecord, now: float) -> None:
        """The director named the coordinator to join."""
        self.standing.coordinator = coordinator.node_id
        self.standing.coordinator_address = coordinator.public_address
        self.liveness.coordinator_since = now
        self.standing.term = max(self.standing.term, coordinator.term)
        self.log.info(
            "join.started", coordinator=coordinator.node_id, address=coordinator.public_address
        )

    def leave(self, messages: int) -> list[Effect]:
        """Leaving: a coordinator hands its role to the highest other member, or, the last
        one, ends the discussion at the director."""
        was_coordinator = self.standing.role is Role.COORDINATOR
        self.set_role("leave")
        if not was_coordinator:
            return []
        others = [m for m in self.membership.members.values() if m.node_id != self.node_id]
        if not others:
            self.log.info("discussion.ended", messages=messages)
            return [UnregisterCoordinator(self.standing.term)]
        successor = max(others, key=lambda m: self.membership.rank(m.node_id))
        self.standing.term += 1
        self.log.info("coordinator.handover", successor=successor.node_id)
        handover = identity.sign_claim(
            self.identity, successor.node_id, self.standing.term, successor.public_address
        )
        return [Send(peer, handover) for peer in self.links.peers]

    def on_listing(self, peer: str, messages: int, now: float) -> list[Effect]:
        """A ``nodes`` was taken: join on being listed, drop out on being left out."""
        listed = self.node_id in self.membership.members
        if self.standing.role is Role.JOINING and listed:
            self.set_role("listed")
            self.log.info("join.completed", members=len(self.membership.members), messages=messages)
            if self.terms.outranks(peer):  # a higher node joining or returning takes over
                return self.stand(now)
        elif self.standing.role is Role.MEMBER and not listed:
            # The coordinator took us for dead (we were paused or cut off): join again.
            self.set_role("unlisted")
            self.log.warning("member.dropped", coordinator=peer)
        return []

    # Timers ------------------------------------------------------------------------------

    def suspect(self, now: float) -> list[Effect]:
        """On a heartbeat: a member that has not heard its coordinator stands."""
        if (
            self.standing.role is Role.MEMBER
            and self.candidacy is None
            and self.coordinator_silent(now)
        ):
            self.log.warning("coordinator.suspected", coordinator=self.standing.coordinator)
            return self.stand(now)
        return []

    def on_timer(self, now: float) -> list[Effect]:
        """The candidacy's deadline; the coordinator's registration with the director."""
        effects: list[Effect] = []
        candidacy = self.candidacy
        if candidacy is not None and now >= candidacy.deadline:
            if candidacy.phase is Phase.VOTING:
                effects.extend(self.become(candidacy.term, now, "no higher node answered"))
            else:
                self.log.warning("election.no_announcement", term=candidacy.term)
                effects.extend(self.stand(now))
        if self.standing.role is Role.COORDINATOR and now >= self.next_register:
            self.next_register = now + self.config.director_interval
            effects.append(RegisterCoordinator(self.record()))
        return effects

    def director_refused(self, current: CoordinatorRecord, now: float) -> list[Effect]:
        """The director holds another coordinator: yield to it, or outrank it."""
        if current.node_id == self.node_id or self.standing.role is not Role.COORDINATOR:
            return []
        if not self.terms.sane(current.term):
            self.log.warning(
                "director.refused", holder=current.node_id, reason="term far above any seen"
            )
            return []
        self.log.warning("director.refused", holder=current.node_id, holder_term=current.term)
        self.terms.max_term = max(self.terms.max_term, current.term)
        rank = self.membership.rank
        if current.term > self.standing.term or rank(current.node_id) > rank(self.node_id):
            # Signed by us as a hand-over, so the members that follow us take it and follow
            # too (an unsigned claim is not flooded: they would follow us for good).
            claim = identity.sign_claim(
                self.identity, current.node_id, current.term, current.public_address
            )
            return self.adopt(claim, source=None, now=now)
        return self.become(self.terms.max_term + 1, now, "outranks the director's holder")

    # Links -------------------------------------------------------------------------------

    def greet(self, peer: str) -> list[Effect]:
        """A new link: a coordinator's claim goes first (before ``nodes`` of its term)."""
        if self.standing.role is Role.COORDINATOR and self.terms.claim is not None:
            return [Send(peer, self.terms.claim)]
        return []

    def canvass(self, peer: str) -> list[Effect]:
        """A new link to a higher member while voting: ask it too."""
        if self.candidacy is not None and self.voting() and peer in self.membership.higher():
            return [Send(peer, wire.Election(self.node_id, self.candidacy.term))]
        return []

    def on_heartbeat(self, peer: str, beat: Heartbeat, now: float) -> list[Effect]:
        """A heartbeat's term: fence an older one; a coordinator outgrows a newer one."""
        if beat.term < self.standing.term:
            return self.terms.fence(peer, now)
        if (
            beat.term > self.standing.term
            and self.standing.role is Role.COORDINATOR
            and peer in self.membership.members
            and self.terms.sane(beat.term)
        ):
            # A member lives in a newer term than ours (a claim we never saw took it there):
            # it refuses our claims and nodes as old, so take a term above it.
            self.terms.max_term = max(self.terms.max_term, beat.term)
            return self.reassert(now, "a member is in a newer term")
        return []

    # Claims ------------------------------------------------------------------------------

    def on_claim(self, peer: str, frame: UpdateCoordinator, now: float) -> list[Effect]:
        """An ``update-coordinator``: follow it, fence it, or bully it."""
        verdict, effects = self.terms.judge(peer, frame, now)
        if verdict is Verdict.FOLLOW:
            return self.adopt(frame, source=peer, now=now)
        if verdict is Verdict.BULLY and self.candidacy is None:
            return self.stand(now)
        return effects

    def adopt(self, claim: UpdateCoordinator, source: str | None, now: float) -> list[Effect]:
        """Follow a winning claim; flood it on; stand if we outrank its coordinator."""
        standing = self.standing
        was_coordinator = standing.role is Role.COORDINATOR
        previous = standing.coordinator
        standing.term = claim.term
        self.terms.max_term = max(self.terms.max_term, claim.term)
        standing.coordinator = claim.coordinator
        standing.coordinator_address = claim.address or standing.coordinator_address
        self.liveness.coordinator_since = now
        self.candidacy = None
        self.terms.claim = claim if claim.signature else None
        self.log.info("term.changed", coordinator=claim.coordinator, previous=previous)
        # Flood a signed claim on (one learnt from the director is unsigned: not ours to pass).
        effects: list[Effect] = [
            Send(p, claim)
            for p in self.links.peers
            if claim.signature and p not in (source, claim.coordinator)
        ]
        if claim.coordinator == self.node_id:  # a leaving coordinator named us
            if source is not None and source == previous:
                self.membership.remove(source, "left")
            return effects + self.become(claim.term, now, "handover")
        if was_coordinator:
            listed = self.node_id in self.membership.members
            self.set_role("deposed" if listed else "deposed-unlisted")
            self.log.warning("coordinator.deposed", by=claim.coordinator)
        effects.extend(self.membership.observe())
        if self.terms.outranks(claim.coordinator):
            effects.extend(self.stand(now))
        return effects

    # Elections ---------------------------------------------------------------------------

    def stand(self, now: float) -> list[Effect]:
        """Stand for election: ask the higher members, or win at once if none is live."""
        term = max(self.standing.term, self.terms.max_term) + 1
        if term > MAX_TERM:  # unreachable while claims are checked: say so, never overflow
            self.log.error("election.impossible", reason="terms exhausted")
            return []
        self.terms.max_term = term
        higher = self.membership.higher()
        if self.coordinator_silent(now):
            # Bully asks every higher node, but waiting on the one taken for dead only
            # costs election_timeout; if it was merely slow it will bully back.
            higher.discard(self.standing.coordinator or "")
        self.log.info("election.started", candidate_term=term, higher=len(higher))
        if not higher:
            return self.become(term, now, "highest live node")
        self.candidacy = Candidacy(term, Phase.VOTING, now + self.config.election_timeout)
        ask = wire.Election(self.node_id, term)
        return [Send(peer, ask) for peer in sorted(higher) if peer in self.links.peers]

    def on_election(self, peer: str, frame: wire.Election, now: float) -> list[Effect]:
        if frame.node_id != peer or peer not in self.membership.members:
            return self.links.refuse(peer, frame.TYPE, "not a member", now)
        if not self.terms.sane(frame.term):
            return self.links.refuse(peer, frame.TYPE, "term far above any seen", now)
        rank = self.membership.rank
        if rank(peer) > rank(self.node_id) or self.standing.role is Role.LEAVING:
            return []
        vote: list[Effect] = [Send(peer, Vote(True, frame.term, self.node_id))]
        last = self._last_election.get(peer)
        if last is not None and now - last < self.config.election_timeout / 2:
            # An honest candidate asks once per candidacy: a burst is abuse, not news. It
            # still gets its vote (we live and outrank it), but sets nothing else going.
            reason = "elections too often"
            return self.links.refuse(peer, frame.TYPE, reason, now, hard=False) + vote
        self._last_election[peer] = now
        self.terms.max_term = max(self.terms.max_term, frame.term)
        effects = vote
        if self.standing.role is Role.COORDINATOR:
            if frame.term >= self.standing.term:  # reassert over the candidate's term
                effects.extend(self.reassert(now, "reasserted"))
            else:
                effects.extend(self.terms.fence(peer, now))
        elif self.candidacy is None:
            effects.extend(self.stand(now))
        return effects

    def on_vote(self, peer: str, frame: Vote, now: float) -> list[Effect]:
        if peer not in self.membership.members or frame.node_id not in ("", peer):
            return self.links.refuse(peer, frame.TYPE, "not a member", now)
        candidacy = self.candidacy
        if candidacy is None or frame.term != candidacy.term or not frame.ok:
            return []
        if self.membership.rank(peer) > self.membership.rank(self.node_id):
            self.log.info("election.outvoted", by=peer)
            candidacy.outvoted(now, self.config.announce_timeout)
        return []

    def reassert(self, now: float, reason: str) -> list[Effect]:
        """As coordinator, take a newer term over a lower claimant or candidate; at most once
        per election_timeout (a candidate that missed it stands again and is answered then)."""
        if now - self._last_reassert < self.config.election_timeout:
            return []
        self._last_reassert = now
        return self.become(self.terms.max_term + 1, now, reason)

    def become(self, term: int, now: float, reason: str, cause: Cause = "elected") -> list[Effect]:
        """Become the coordinator of ``term`` (``cause``: a new discussion or an election
        won): claim it to every peer, list the members, register with the director."""
        previous = self.standing.coordinator
        if previous is not None and previous != self.node_id and self.coordinator_silent(now):
            self.membership.remove(previous, "timed-out")  # taken for dead: not in the new term
        self.set_role(cause)
        self.standing.term = term
        self.terms.max_term = max(self.terms.max_term, term)
        self.standing.coordinator = self.node_id
        self.liveness.coordinator_since = now
        self.candidacy = None
        self.membership.seat_self()
        self.liveness.admit_all(self.membership.members, now)
        self.next_register = now + self.config.director_interval
        if cause == "start":
            self.log.info("discussion.started")
        else:
            members = len(self.membership.members)
            self.log.info("coordinator.elected", reason=reason, members=members)
        address = self.membership.me.public_address
        claim = identity.sign_claim(self.identity, self.node_id, term, address)
        self.terms.claim = claim
        effects: list[Effect] = [Send(peer, claim) for peer in self.links.peers]
        effects.extend(self.membership.changed())
        effects.append(RegisterCoordinator(self.record()))
        return effects
