"""A hostile member among honest node cores, driven by a hypothesis state machine.

The cluster is the synchronous ``Mesh``: 3 or 4 honest nodes and one adversary, a real
``Node`` that holds the group secret and its own key (so it links, joins and beats like
anyone) and that also injects frames no honest node sends: messages with drawn sequence
numbers (far ahead, reused with another text: equivocation) and drawn clocks (naming
unknown origins), tampered signatures and wrong ids, forged relays, coordinator claims of
any term in range (signed, unsigned, naming another node), elections, votes, ``nodes``
naming itself, heartbeats and discussion requests with drawn digests, ``discussion`` frames
of drawn messages, and leaves naming someone else. Honest traffic, time and link drops are
mixed in.

After every step: no exception escaped any handler, honest nodes hold at most
``max_held_messages``, and honest terms stay sane and never decrease. At the end the
adversary is cut off and the honest nodes run on their own for a while: then they hold
identical histories (ids, texts, versions, order) with every honest message in them, and
agree on one honest coordinator (README: Guarantees 3 and 7).

The default run is short and derandomized (it runs in ``make test``).
``CHAT_FUZZ_EXAMPLES=N`` runs N examples instead, with random seeds (``make fuzz`` does);
``CHAT_FUZZ_STEPS=N`` sets the steps per example.
"""

from __future__ import annotations

import os

from attrs import evolve
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from chat.identity import message_id, sign_claim
from chat.wire import (
    Discussion,
    DiscussionRequest,
    Election,
    Frame,
    Heartbeat,
    Leave,
    MemberRecord,
    Message,
    NodeRegistration,
    Nodes,
    Unregistration,
    UpdateCoordinator,
    Vote,
    decode_frame,
    encode_frame,
)
from chat.wire.bounds import MAX_SEQUENCE, MAX_TERM
from chatd.config import TEST
from chatd.core.node import Node, NodeError, RegisterCoordinator, Role, UnregisterCoordinator
from director.registry import Refused, Registry
from tests.core.mesh import Mesh

TIMESTAMP = "2024-01-01T00:00:00Z"
# Seeds give node-ids in falling order 7 > 11 > 12 > 23 > 13: honest alice starts.
HONEST = [("alice", 7), ("bob", 11), ("carol", 12), ("dave", 13)]
ADVERSARY = ("mallory", 23)
SANE_TERM = 2**40
# Virtual seconds the honest nodes run alone at the end, in beats of the TEST profile.
QUIESCE_SECONDS = 10.0
BEAT = 0.05

EXAMPLES = int(os.environ.get("CHAT_FUZZ_EXAMPLES", "0"))
STEPS = int(os.environ.get("CHAT_FUZZ_STEPS", "50"))

hex_ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
texts = st.text(min_size=1, max_size=40).filter(lambda t: bool(t.strip()))
terms_in_range = st.one_of(
    st.integers(0, 5),
    st.integers(0, 3000),
    st.integers(0, MAX_TERM),
    st.just(MAX_TERM),
)
small_time = st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.2, 0.35, 0.6])


class AdversaryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.mesh = Mesh()
        self.honest: list[Node] = []
        self.terms: dict[str, int] = {}
        self.sent: list[str] = []
        self.adv_seq = 0  # the highest sequence number the adversary signed
        self.adv_versions: dict[int, list[Message]] = {}
        self.drop_until = 0.0
        self.drop_pair: frozenset[str] = frozenset()
        # The director, as the shell talks to it: registrations refused are answered.
        self.registry = Registry(ttl=6 * TEST.director_interval)
        self.registered = 0

    # Building ------------------------------------------------------------------------------

    @initialize(
        count=st.integers(3, 4),
        adv_priority=st.sampled_from([0, 0, 5]),
        adv_joins_at=st.integers(1, 4),
    )
    def build(self, count: int, adv_priority: int, adv_joins_at: int) -> None:
        mesh = self.mesh
        self.honest = [mesh.add(name, seed) for name, seed in HONEST[:count]]
        self.adv = mesh.add(ADVERSARY[0], ADVERSARY[1], priority=adv_priority)
        self.ident = mesh.identities[self.adv.node_id]
        mesh.start(self.honest[0])
        order = list(self.honest[1:])
        order.insert(min(adv_joins_at, len(order)) - 1, self.adv)
        for node in order:  # the director names whoever coordinates now
            first = self.honest[0]
            mesh.join(node, mesh.nodes[first.standing.coordinator or first.node_id])
        self._settle()
        self._director()
        self.terms = {n.node_id: n.term for n in self.honest}

    # Plumbing ------------------------------------------------------------------------------

    def _settle(self) -> None:
        """``Mesh.settle``, bounded, and never dialing a pair one side has banned."""
        mesh = self.mesh
        for _ in range(64):
            wanted = [
                (node, mesh.nodes[peer])
                for node in list(mesh.nodes.values())
                for peer in sorted(mesh.wanted[node.node_id])
                if peer in mesh.nodes
                and frozenset((node.node_id, peer)) not in mesh.links
                and peer not in node.links.banned
                and node.node_id not in mesh.nodes[peer].links.banned
            ]
            if not wanted:
                return
            mesh.connect(*wanted[0])

    def _director(self) -> None:
        """Carry the director calls made since the last look, as ``chatd.runtime`` does."""
        mesh = self.mesh
        while self.registered < len(mesh.director):
            src, effect = mesh.director[self.registered]
            self.registered += 1
            if isinstance(effect, UnregisterCoordinator):
                self.registry.unregister(Unregistration(src, effect.term))
            elif isinstance(effect, RegisterCoordinator) and src in mesh.nodes:
                outcome = self.registry.register_coordinator(effect.record, mesh.now)
                if isinstance(outcome, Refused):
                    node = mesh.nodes[src]
                    mesh.route(node, node.director_refused(outcome.current, mesh.now))

    def _drop(self, src: str, dst: str, frame: Frame) -> bool:
        return self.mesh.now < self.drop_until and frozenset((src, dst)) == self.drop_pair

    def _inject(self, target: Node, frame: Frame) -> None:
        """The adversary sends ``frame`` to ``target`` over its link (if it has one)."""
        mesh = self.mesh
        if frozenset((self.adv.node_id, target.node_id)) not in mesh.links:
            return
        carried = decode_frame(encode_frame(frame))
        assert carried == frame
        mesh.frames.append((self.adv.node_id, target.node_id, carried))
        mesh.route(target, target.frame_received(self.adv.node_id, carried, mesh.now))

    def _sign(self, seq: int, text: str, clock: dict[str, int]) -> Message:
        clock = {**clock, self.adv.node_id: seq}
        message = self.ident.sign(ADVERSARY[0], TIMESTAMP, text, clock)
        self.adv_seq = max(self.adv_seq, seq) if seq <= self.adv_seq + 300 else self.adv_seq
        self.adv_versions.setdefault(seq, []).append(message)
        return message

    # Honest rules --------------------------------------------------------------------------

    @rule(which=st.integers(0, 3), text=texts)
    def honest_sends(self, which: int, text: str) -> None:
        node = self.honest[which % len(self.honest)]
        try:
            self.sent.append(self.mesh.send(node, text))
        except NodeError as exc:
            assert exc.code == "not-ready" and not node.has_joined, exc

    @rule(seconds=small_time)
    def time_passes(self, seconds: float) -> None:
        self.mesh.tick(seconds)
        self._settle()
        self._director()

    @rule(a=st.integers(0, 4), b=st.integers(0, 4), seconds=st.sampled_from([0.1, 0.3, 1.0]))
    def link_drops(self, a: int, b: int, seconds: float) -> None:
        everyone = [*self.honest, self.adv]
        pair = frozenset((everyone[a % len(everyone)].node_id, everyone[b % len(everyone)].node_id))
        self.drop_pair, self.drop_until = pair, self.mesh.now + seconds
        self.mesh.drop = self._drop

    # Adversary rules -----------------------------------------------------------------------

    def _target(self, which: int) -> Node:
        return self.honest[which % len(self.honest)]

    @rule(
        which=st.integers(0, 3),
        seq_kind=st.sampled_from(["next", "next", "reuse", "ahead", "far", "any"]),
        ahead=st.integers(1, 400),
        anyseq=st.integers(1, MAX_SEQUENCE),
        text=texts,
        deps=st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0, 0, -1, 1])), max_size=4),
        unknown=st.one_of(
            st.just([]),
            st.lists(st.tuples(hex_ids, st.sampled_from([0, 0, 0, 1])), max_size=24),
        ),
        wrap=st.booleans(),
    )
    def adversary_message(
        self,
        which: int,
        seq_kind: str,
        ahead: int,
        anyseq: int,
        text: str,
        deps: list[tuple[int, int]],
        unknown: list[tuple[str, int]],
        wrap: bool,
    ) -> None:
        target = self._target(which)
        seq = {
            "next": self.adv_seq + 1,
            "reuse": max(1, self.adv_seq - ahead % 4),
            "ahead": self.adv_seq + 1 + ahead % 8,
            "far": self.adv_seq + ahead,
            "any": anyseq,
        }[seq_kind]
        clock: dict[str, int] = dict(unknown)
        for index, delta in deps:
            origin = self.honest[index % len(self.honest)].node_id
            clock[origin] = max(0, target.replica.buffer.delivered.get(origin, 0) + delta)
        message = self._sign(seq, text, clock)
        self._inject(target, Discussion([message]) if wrap else message)

    @rule(which=st.integers(0, 3), how=st.sampled_from(["signature", "text", "id", "origin"]))
    def adversary_forges(self, which: int, how: str) -> None:
        target = self._target(which)
        genuine = self.ident.sign(
            ADVERSARY[0], TIMESTAMP, "forged", {self.adv.node_id: self.adv_seq + 1}
        )
        if how == "signature":
            forged = evolve(genuine, signature=genuine.signature[::-1])
        elif how == "text":
            forged = evolve(genuine, message="tampered")
        elif how == "id":
            forged = self.ident.sign(
                ADVERSARY[0],
                TIMESTAMP,
                "wrong id",
                {self.adv.node_id: self.adv_seq + 1},
                id=message_id(self.adv.node_id, self.adv_seq + 2),
            )
        else:
            history = list(target.replica.history)
            if not history:
                return
            forged = evolve(history[-1], message=history[-1].message + "!")
        self._inject(target, forged)

    @rule(which=st.integers(0, 3), back=st.integers(0, 5))
    def adversary_relays(self, which: int, back: int) -> None:
        """A faithful relay of a message someone delivered (valid: to be taken)."""
        target = self._target(which)
        source = self.honest[(which + 1) % len(self.honest)]
        history = list(source.replica.history)
        if history:
            self._inject(target, history[-1 - back % len(history)])

    @rule(
        which=st.integers(0, 3),
        kind=st.sampled_from(["self", "self", "unsigned", "other", "signer"]),
        term=terms_in_range,
        relative=st.booleans(),
    )
    def adversary_claims(self, which: int, kind: str, term: int, relative: bool) -> None:
        target = self._target(which)
        if relative:
            term = min(MAX_TERM, target.term + term)
        adv, other = self.adv.node_id, self.honest[(which + 1) % len(self.honest)].node_id
        address = self.adv.me.public_address
        claim: UpdateCoordinator
        if kind == "self":
            claim = sign_claim(self.ident, adv, term, address)
        elif kind == "unsigned":
            claim = UpdateCoordinator(adv, term, address)
        elif kind == "other":
            claim = sign_claim(self.ident, other, term, "ws://other.example:9000")
        else:
            claim = evolve(sign_claim(self.ident, adv, term, address), signer=other)
        self._inject(target, claim)

    @rule(which=st.integers(0, 3), term=terms_in_range, relative=st.booleans(), spoof=st.booleans())
    def adversary_elects(self, which: int, term: int, relative: bool, spoof: bool) -> None:
        target = self._target(which)
        if relative:
            term = min(MAX_TERM, target.term + term)
        sender = self.honest[(which + 1) % len(self.honest)].node_id if spoof else self.adv.node_id
        self._inject(target, Election(sender, term))

    @rule(which=st.integers(0, 3), ok=st.booleans(), term=terms_in_range, spoof=st.booleans())
    def adversary_votes(self, which: int, ok: bool, term: int, spoof: bool) -> None:
        target = self._target(which)
        if target.election.candidacy is not None and term < 3:
            term = target.election.candidacy.term
        sender = self.honest[(which + 1) % len(self.honest)].node_id if spoof else self.adv.node_id
        self._inject(target, Vote(ok, term, sender))

    @rule(
        which=st.integers(0, 3),
        term=terms_in_range,
        relative=st.booleans(),
        listed=st.lists(st.integers(0, 4), max_size=5),
        version=st.integers(0, 2**53 - 1),
    )
    def adversary_lists_nodes(
        self, which: int, term: int, relative: bool, listed: list[int], version: int
    ) -> None:
        target = self._target(which)
        if relative:
            term = min(MAX_TERM, target.term + term % 3)
        everyone = [*self.honest, self.adv]
        members = {everyone[i % len(everyone)].me for i in listed} | {self.adv.me}
        records: list[MemberRecord] = sorted(members, key=lambda m: m.node_id)
        neighbours = {m.node_id: [n.node_id for n in records if n != m] for m in records}
        self._inject(target, Nodes(records, neighbours, term, self.adv.node_id, version))

    @rule(
        which=st.integers(0, 3),
        term=terms_in_range,
        digest=st.dictionaries(st.one_of(hex_ids, st.just("")), st.integers(0, MAX_SEQUENCE)),
        known=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 300)), max_size=4),
        hash=st.one_of(st.just(""), st.text(alphabet="0123456789abcdef", max_size=128)),
        spoof=st.booleans(),
    )
    def adversary_beats(
        self,
        which: int,
        term: int,
        digest: dict[str, int],
        known: list[tuple[int, int]],
        hash: str,
        spoof: bool,
    ) -> None:
        target = self._target(which)
        everyone = [*self.honest, self.adv]
        digest = {**digest, **{everyone[i % len(everyone)].node_id: c for i, c in known}}
        sender = self.honest[(which + 1) % len(self.honest)].node_id if spoof else self.adv.node_id
        self._inject(target, Heartbeat(sender, term, digest, hash))

    @rule(
        which=st.integers(0, 3),
        clock=st.dictionaries(hex_ids, st.integers(0, MAX_SEQUENCE), max_size=8),
        zero=st.booleans(),
        chains=st.dictionaries(
            st.one_of(hex_ids, st.sampled_from(["", "x"])),
            st.text(alphabet="0123456789abcdef", max_size=64),
            max_size=6,
        ),
        mine=st.booleans(),
    )
    def adversary_requests(
        self, which: int, clock: dict[str, int], zero: bool, chains: dict[str, str], mine: bool
    ) -> None:
        target = self._target(which)
        if zero:
            clock = {}
        if mine:  # claim to differ on every origin the target holds
            chains = {**chains, **{o: "00" for o in target.replica.chains.hashes()}}
        self._inject(target, DiscussionRequest(clock, chains))

    @rule(
        which=st.integers(0, 3),
        picks=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 3)), max_size=6),
    )
    def adversary_replays(self, which: int, picks: list[tuple[int, int]]) -> None:
        """A ``discussion`` of versions the adversary signed before, any mix and order."""
        target = self._target(which)
        if not self.adv_versions:
            return
        seqs = sorted(self.adv_versions)
        messages = []
        for i, j in picks:
            versions = self.adv_versions[seqs[i % len(seqs)]]
            messages.append(versions[j % len(versions)])
        self._inject(target, Discussion(messages))

    @rule(which=st.integers(0, 3), other=st.integers(0, 3), term=terms_in_range)
    def adversary_leaves_for_another(self, which: int, other: int, term: int) -> None:
        target = self._target(which)
        self._inject(target, Leave(self.honest[other % len(self.honest)].node_id, term))

    @rule(which=st.integers(0, 3))
    def adversary_redials(self, which: int) -> None:
        target = self._target(which)
        link = frozenset((self.adv.node_id, target.node_id))
        if link not in self.mesh.links:
            self.mesh.connect(self.adv, target)

    # Invariants ----------------------------------------------------------------------------

    @invariant()
    def held_is_bounded(self) -> None:
        for node in self.honest:
            assert node.replica.buffer.held <= node.config.max_held_messages

    @invariant()
    def terms_are_sane_and_never_fall(self) -> None:
        for node in self.honest:
            assert node.term < SANE_TERM, (node.me.name, node.term)
            assert node.term >= self.terms.get(node.node_id, 0), (node.me.name, node.term)
            self.terms[node.node_id] = node.term

    # The end -------------------------------------------------------------------------------

    def _director_rejoins(self) -> None:
        """What the shell's join loop (``Runtime._stay_joined``) does: a node out of the
        discussion asks the director again (``register_node``) and follows its advice. A
        member the coordinator dropped whose coordinator then dies, or never admits it, is
        otherwise stuck: a joining node never stands for election and nobody dials it."""
        mesh = self.mesh
        for node in self.honest:
            if node.role is not Role.JOINING:
                continue
            me = node.me
            advice = self.registry.register_node(
                NodeRegistration(me.node_id, me.address, me.public_address), mesh.now
            )
            if advice.action == "start":
                mesh.route(node, node.start_discussion(advice.term, mesh.now))
            elif advice.coordinator is not None:
                mesh.route(node, node.join(advice.coordinator, mesh.now))
            self._settle()
            self._director()

    def _converged(self) -> bool:
        nodes = self.honest
        histories = [[(m.id, m.signature) for m in n.replica.history] for n in nodes]
        return (
            all(
                n.role in (Role.MEMBER, Role.COORDINATOR) and n.election.candidacy is None
                for n in nodes
            )
            and len({n.standing.coordinator for n in nodes}) == 1
            and all(h == histories[0] for h in histories)
        )

    def teardown(self) -> None:
        if not self.honest:
            return
        mesh = self.mesh
        mesh.drop = lambda src, dst, frame: False
        for link in [link for link in mesh.links if self.adv.node_id in link]:
            (other,) = link - {self.adv.node_id}
            mesh.disconnect(self.adv.node_id, other)
        del mesh.nodes[self.adv.node_id]
        calm = 0
        for step in range(1, int(QUIESCE_SECONDS / BEAT) + 1):
            mesh.tick(BEAT)
            self._settle()
            self._director()
            if step % int(1 / BEAT) == 0:
                self._director_rejoins()
                calm = calm + 1 if self._converged() else 0
                if calm >= 2:
                    break
        self.held_is_bounded()
        self.terms_are_sane_and_never_fall()

        names = {n.node_id: n.me.name for n in mesh.nodes.values()}
        roles = {n.me.name: n.role for n in self.honest}
        assert all(r in (Role.MEMBER, Role.COORDINATOR) for r in roles.values()), roles
        coordinators = {
            n.me.name: names.get(n.standing.coordinator or "", n.standing.coordinator)
            for n in self.honest
        }
        assert list(roles.values()).count(Role.COORDINATOR) == 1, (roles, coordinators)
        assert len(set(coordinators.values())) == 1, coordinators

        histories = {
            n.me.name: [(m.id, m.message, m.signature) for m in n.replica.history]
            for n in self.honest
        }
        first = next(iter(histories.values()))
        for name, history in histories.items():
            assert history == first, (name, histories)
        ids = {entry[0] for entry in first}
        assert set(self.sent) <= ids
        for node in self.honest:
            adversary = {m.id for m in node.replica.history if m.node_id == self.adv.node_id}
            assert adversary <= ids
        # What the run reached (pytest --hypothesis-show-statistics), when run by hypothesis.
        if not currently_in_test_context():
            return
        adversary_kept = sum(
            1 for m in self.honest[0].replica.history if m.node_id == self.adv.node_id
        )
        event("adversary messages kept", "none" if not adversary_kept else "some")
        banned = sum(self.adv.node_id in n.links.banned for n in self.honest)
        event("adversary banned by", str(banned))
        event(
            "equivocations seen",
            str(any(n.log.counters["messages.equivocations"] for n in self.honest)),
        )
        event("final term", "1-2" if self.honest[0].term <= 2 else ">2")


AdversaryMachine.TestCase.settings = settings(
    max_examples=EXAMPLES or 60,
    stateful_step_count=STEPS,
    deadline=None,
    derandomize=not EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestAdversary = AdversaryMachine.TestCase


def test_equivocation_over_unknown_origins_converges() -> None:
    """Found by `make fuzz`: three versions of one slot, two naming origins that do not
    exist. The version that released the slot at bob and carol must reach alice, who
    holds only the winner."""
    machine = AdversaryMachine()
    machine.build(count=3, adv_priority=0, adv_joins_at=1)
    for _ in range(3):
        machine.adversary_redials(which=0)
    machine.adversary_message(
        ahead=1, anyseq=1, deps=[], seq_kind="next", text="0", unknown=[], which=1, wrap=False
    )
    machine.adversary_redials(which=0)
    for origin in ("00000000000000000000000000000001", "00000000000000000000000000000000"):
        machine.adversary_message(
            ahead=1,
            anyseq=1,
            deps=[],
            seq_kind="reuse",
            text="0",
            unknown=[(origin, 1)],
            which=0,
            wrap=False,
        )
    machine.teardown()
