"""A node's state and the queries on it, shared by the node's handler modules."""

from __future__ import annotations

from collections import Counter

from chat.identity import Identity
from chat.wire import (
    CoordinatorRecord,
    Frame,
    Hello,
    MemberRecord,
    Message,
    Nodes,
    UpdateCoordinator,
)
from chat.wire.bounds import MAX_MEMBERS
from chatd.config import Config
from chatd.core.abuse import Refusals, TokenBucket
from chatd.core.delivery import CausalBuffer
from chatd.core.effects import Announce, Disconnect, Effect, Role
from chatd.core.election import Candidacy, Phase, Rank
from chatd.core.history import History
from chatd.core.presence import Roster
from chatd.core.recorder import Recorder


class NodeState:
    def __init__(
        self,
        me: MemberRecord,
        ident: Identity,
        config: Config,
    ) -> None:
        self.me = me
        self.identity = ident
        self.config = config
        self._log = Recorder(lambda: self.term)
        self._dialing: dict[str, str] = {}  # what the shell was asked to dial (Dial effects)
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
        self._next_gossip = 0.0
        self._next_register = 0.0
        self._last_request: dict[str, float] = {}
        self._last_fence: dict[str, float] = {}
        self._membership_version = 0  # as coordinator: changes made in this term
        self._nodes_seen = (0, 0)  # (term, version) of the latest ``nodes`` taken
        # Cheap running totals for status and benchmarks (no per-message log lines).
        self.counters: Counter[str] = Counter()
        # Against misbehaving members (chatd.core.abuse; README: Trust model).
        self.refusals = Refusals(
            config.strike_limit, config.refusal_window, config.refusal_log_interval
        )
        self.banned: set[str] = set()  # proven hostile (a bad message, an equivocation)
        self._send_bucket = TokenBucket(config.flood_rate, config.flood_burst)
        self._flood: dict[str, TokenBucket] = {}
        self._equivocations: set[tuple[str, int]] = set()  # slots whose proof we spread
        # id → the losing version of an equivocated slot, sent along with the winner in
        # repairs: the winner may have been delivered on the loser's dependencies alone.
        self._rivals: dict[str, Message] = {}
        self._chains: dict[str, bytes] = {}  # origin → hash chain of its delivered messages
        self._history_hash: str | None = None
        self._discussion_expected: dict[str, float] = {}  # peer → until when
        self.claim: UpdateCoordinator | None = None  # the signed claim we follow
        self._last_election: dict[str, float] = {}
        self._last_claim_by: dict[str, float] = {}
        self._last_reassert = float("-inf")
        # Presence (chatd.core.presence): what clients were last told of the membership;
        # as coordinator, why the members it removed went (``nodes.departed``, the newest
        # MAX_MEMBERS; an entry goes when its node joins again); as a member, what the
        # coordinator's latest ``nodes`` said of that.
        self.roster = Roster()
        self.departed: dict[str, str] = {}
        self._renames: dict[str, TokenBucket] = {}  # as coordinator: per member
        self._rename_bucket = TokenBucket(config.rename_rate, config.rename_burst)
        self._next_rename_assert = 0.0

    @property
    def log(self) -> Recorder:
        """Where the node records its log lines (returned as ``Log`` effects)."""
        return self._log

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
                if (address := self.coordinator_public_address()) is not None:
                    out[peer] = address
            elif self.role is Role.COORDINATOR or peer not in self.members:
                continue
            elif self.node_id < peer or peer not in self.neighbours():
                # The second case: a candidate's link to a higher member off the overlay.
                out[peer] = self.members[peer].public_address
        return out

    def coordinator_public_address(self) -> str | None:
        """Where to reach the coordinator: its member record, else what a claim or the
        director said."""
        if self.coordinator in self.members:
            return self.members[self.coordinator].public_address
        return self.coordinator_address

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

    def _refuse(self, peer: str, frame: Frame, reason: str, *, hard: bool = True) -> list[Effect]:
        """Log (or count) a refused frame. A hard refusal is a strike against the peer;
        too many and its link is closed. Strikes are timed by the last tick, which is
        close enough for a window of seconds."""
        now = self._last_tick if self._last_tick is not None else 0.0
        self.refusals.note(self.log, "frame.refused", peer, frame.TYPE, reason, now)
        self.counters["frames.refused"] += 1
        if hard and self.refusals.strike(peer, now):
            self.log.warning("peer.expelled", peer=peer, reason="too many refused frames")
            return [Disconnect(peer, "too many refused frames")]
        return []

    def _ban(self, peer: str, reason: str) -> list[Effect]:
        """A peer proved hostile: close its link; it may not link or join again."""
        if peer not in self.banned:
            self.banned.add(peer)
            self.log.warning("peer.banned", peer=peer, reason=reason)
        return [Disconnect(peer, reason)] if peer in self.peers else []

    def _term_is_sane(self, term: int) -> bool:
        """Honest terms grow one per election: a jump far beyond any seen is forged, or
        honest on top of a forged jump this node did not see (a member pushed one node up
        by ``max_term_step``, which then stood one higher). So a refused term still raises
        the highest seen by what it lacked, at most ``max_term_step``: its next copy (the
        fence comes again) is taken, and terms still grow at most that much per frame."""
        step = self.config.max_term_step
        ceiling = max(self.term, self._max_term) + step
        if term <= ceiling:
            return True
        self._max_term = max(self._max_term, min(term - step, ceiling))
        return False

    def _nodes_frame(self) -> Nodes:
        return Nodes(
            node=sorted(self.members.values(), key=lambda m: m.node_id),
            neighbours=self.overlay,
            term=self.term,
            coordinator=self.node_id,
            version=self._membership_version,
            departed=dict(self.departed),
        )

    def _departs(self, member: str, reason: str) -> None:
        """Note why ``member`` was removed, for ``nodes.departed`` (the newest MAX_MEMBERS)."""
        self.departed.pop(member, None)
        self.departed[member] = reason
        self._renames.pop(member, None)
        while len(self.departed) > MAX_MEMBERS:
            del self.departed[next(iter(self.departed))]

    def _observe(self) -> list[Effect]:
        """Presence events for what changed in the membership since clients were last told
        (chatd.core.presence); nothing while this node is not in the discussion."""
        if not self.ready:
            return []
        events = self.roster.update(
            {m: r.name for m, r in self.members.items()}, self.coordinator, self.departed
        )
        for event in events:
            self.log.info(
                "presence", presence=event.event, member=event.node_id, member_name=event.name
            )
        return [Announce(event) for event in events]

    # Implemented by the handler modules, each of which calls one of the other's.

    def _fence(self, peer: str, now: float) -> list[Effect]:
        raise NotImplementedError

    def _send_discussion(self, peer: str, clock: dict[str, int]) -> list[Effect]:
        raise NotImplementedError

    def _reassert(self, now: float, reason: str) -> list[Effect]:
        raise NotImplementedError
