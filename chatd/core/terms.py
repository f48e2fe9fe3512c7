"""Terms and coordinator claims: which claims an honest node makes, which win, and fencing.

- Terms only grow. A coordinator claim (``update-coordinator``) is signed by the coordinator
  it names, or, for a hand-over, by the coordinator it replaces; any other is refused. A
  claim of an older term is refused and answered with the current signed claim (fencing);
  of the same term, the higher rank ``(reachable, priority, node-id)`` wins; a term more than
  ``max_term_step`` above any seen is refused.
- Bully: a lower node's winning claim is never followed, not even for a moment: this node
  stands above its term, at most once per ``election_timeout`` for each claimant.
"""

from __future__ import annotations

import enum

from chat import identity
from chat.wire import UpdateCoordinator
from chatd.config import Config
from chatd.core.effects import Effect, Role, Send
from chatd.core.links import Links
from chatd.core.membership import Membership
from chatd.core.recorder import Recorder
from chatd.core.standing import Standing


class Verdict(enum.Enum):
    IGNORE = "ignore"  # refused, fenced, or nothing new
    FOLLOW = "follow"  # a winning claim
    BULLY = "bully"  # a winning claim by a lower node: stand above it


class Terms:
    def __init__(
        self,
        config: Config,
        standing: Standing,
        membership: Membership,
        links: Links,
        log: Recorder,
    ) -> None:
        self.config = config
        self.standing = standing
        self.membership = membership
        self.links = links
        self.log = log
        self._last_claim_by: dict[str, float] = {}
        self.claim: UpdateCoordinator | None = None  # the signed claim we follow
        self.max_term = 0  # highest term seen in any election or claim
        self._last_fence: dict[str, float] = {}

    def sane(self, term: int) -> bool:
        """Honest terms grow one per election: a jump far beyond any seen is forged, or
        honest on top of a forged jump this node did not see (a member pushed one node up
        by ``max_term_step``, which then stood one higher). So a refused term still raises
        the highest seen by what it lacked, at most ``max_term_step``: its next copy (the
        fence comes again) is taken, and terms still grow at most that much per frame."""
        step = self.config.max_term_step
        ceiling = max(self.standing.term, self.max_term) + step
        if term <= ceiling:
            return True
        self.max_term = max(self.max_term, min(term - step, ceiling))
        return False

    def check(self, claim: UpdateCoordinator) -> str | None:
        """Why no honest node would make ``claim``, or None."""
        if not self.sane(claim.term):
            return "term far above any seen"
        handover = claim.signer == self.standing.coordinator and claim.signer != claim.coordinator
        if claim.signer != claim.coordinator and not handover:
            return "claim not signed by its coordinator or ours"
        if not identity.verify_claim(claim):
            return "claim signature does not match its signer"
        return None

    def wins(self, claim: UpdateCoordinator) -> bool:
        """Whether a coordinator claim beats what this node holds (newer term, or the
        same term by a higher node)."""
        if claim.term != self.standing.term:
            return claim.term > self.standing.term
        coordinator, rank = self.standing.coordinator, self.membership.rank
        return coordinator is None or rank(claim.coordinator) > rank(coordinator)

    def fence(self, peer: str, now: float) -> list[Effect]:
        """Tell a peer living in an older term who coordinates now (at most once a beat)."""
        last = self._last_fence.get(peer)
        claim = self.claim
        if (
            claim is None
            or (claim.coordinator, claim.term) != (self.standing.coordinator, self.standing.term)
            or (last is not None and now - last < self.config.heartbeat_interval)
        ):
            return []
        self._last_fence[peer] = now
        effects: list[Effect] = [Send(peer, claim)]
        if self.standing.role is Role.COORDINATOR and peer in self.membership.members:
            # It missed our nodes meanwhile.
            effects.append(Send(peer, self.membership.nodes_frame()))
        return effects

    def outranks(self, coordinator: str) -> bool:
        """Whether this node must bully ``coordinator``: it is a member we know (an unknown
        one's priority is unknown: follow it, join, and judge once listed) and ranks lower."""
        members, rank, me = self.membership.members, self.membership.rank, self.membership.node_id
        return (
            self.standing.has_joined
            and coordinator in members
            and me in members
            and rank(me) > rank(coordinator)
        )

    def judge(
        self, peer: str, frame: UpdateCoordinator, now: float
    ) -> tuple[Verdict, list[Effect]]:
        """What to do about an ``update-coordinator``, and the effects of a refusal."""
        standing = self.standing
        if standing.role is Role.LEAVING:
            return Verdict.IGNORE, []
        if frame.coordinator == standing.coordinator and frame.term == standing.term:
            own = frame.signer == frame.coordinator and frame != self.claim
            if own and identity.verify_claim(frame):
                self.claim = frame  # prefer the coordinator's own word to a hand-over's
            return Verdict.IGNORE, []
        problem = self.check(frame)
        if problem is not None:
            return Verdict.IGNORE, self.links.refuse(peer, frame.TYPE, problem, now)
        if not self.wins(frame):
            reason = "an older term or a lower coordinator"
            self.links.refuse(peer, frame.TYPE, reason, now, hard=False)
            return Verdict.IGNORE, self.fence(peer, now)
        if self.outranks(frame.coordinator):
            # Bully: a lower node claims while we live. We never follow it, not even for a
            # moment: we stand above its term, at most once per election_timeout for each
            # claimant (each stand is an election).
            last = self._last_claim_by.get(frame.signer)
            if last is not None and now - last < self.config.election_timeout:
                reason = "a lower node claims too often"
                self.links.refuse(peer, frame.TYPE, reason, now, hard=False)
                return Verdict.IGNORE, self.fence(peer, now)  # it hears whom we follow
            self._last_claim_by[frame.signer] = now
            self.max_term = max(self.max_term, frame.term)
            self.log.info("claim.outranked", claimant=frame.coordinator, claim_term=frame.term)
            return Verdict.BULLY, []
        return Verdict.FOLLOW, []
