"""The sans-I/O Node, driven directly: joining, relaying, state transfer, repair, hand-over,
and the refusal of bad input (logged, nothing changed, nothing lost)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from attrs import evolve

from chat.identity import Identity, message_id, sign_claim
from chat.wire import (
    Auth,
    Discussion,
    DiscussionRequest,
    Election,
    Frame,
    Heartbeat,
    Join,
    Leave,
    Message,
    Nodes,
    UpdateCoordinator,
)
from chat.wire.bounds import MAX_CLOCK_ENTRIES, MAX_MEMBERS
from chatd.core.abuse import TokenBucket
from chatd.core.node import (
    Deliver,
    Disconnect,
    Effect,
    Node,
    NodeError,
    RegisterCoordinator,
    Role,
    Send,
    UnregisterCoordinator,
)
from tests.core.mesh import Mesh
from tests.core.vclock import tick

TIMESTAMP = "2024-01-01T00:00:00Z"


def group(mesh: Mesh, *priorities: int, term: int = 1) -> list[Node]:
    """A discussion started by the first node, then joined by the others in turn.

    The seeds give node-ids in falling order, so with equal priorities no joiner outranks
    the starter (a higher joiner would rightly stand for election and take over).
    """
    names = ["alice", "bob", "carol", "dave", "erin"]
    seeds = [7, 11, 12, 23, 13]
    nodes = [mesh.add(names[i], seed=seeds[i], priority=p) for i, p in enumerate(priorities)]
    mesh.start(nodes[0], term)
    for node in nodes[1:]:
        mesh.join(node, nodes[0])
    return nodes


def state(node: Node) -> tuple[Any, ...]:
    """Everything a refused frame must leave alone."""
    return (
        node.role,
        node.term,
        node.standing.coordinator,
        dict(node.membership.members),
        {k: list(v) for k, v in node.membership.overlay.items()},
        node.replica.delivered_clock(),
        [m.id for m in node.replica.history],
        node.replica.buffer.held,
        sorted(node.links.peers),
    )


def refuse(
    mesh: Mesh,
    node: Node,
    sender: Node,
    frame: Frame,
    event: str,
    reason: str,
    answer: Sequence[Effect] | None = None,
) -> dict[str, Any]:
    """``node`` refuses ``frame``: state unchanged, one warning, and only ``answer`` sent."""
    node.links.flush(node.links.refusals.next_flush)  # repeats are logged again
    mesh.plain(node, list(node.log.drain()))
    before, seen = state(node), len(mesh.logged(node, event))
    assert mesh.plain(node, node.frame_received(sender.node_id, frame, mesh.now)) == list(
        answer or []
    )
    assert state(node) == before
    (logged,) = mesh.logged(node, event)[seen:]
    assert logged["level"] == "warning"
    assert logged["peer"] == sender.node_id
    assert reason in logged["reason"]
    return logged


def signed(
    mesh: Mesh, origin: Node, text: str = "hi", clock: dict[str, int] | None = None
) -> Message:
    """A genuine next message of ``origin`` that nobody has seen yet."""
    if clock is None:
        clock = tick(origin.replica.delivered_clock(), origin.node_id)
    return mesh.identities[origin.node_id].sign(origin.me.name, TIMESTAMP, text, clock)


# Membership and traffic -------------------------------------------------------------------


def test_start_and_two_joins_make_three_members_with_one_coordinator() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    everyone = {alice.node_id, bob.node_id, carol.node_id}
    assert [n.role for n in (alice, bob, carol)] == [Role.COORDINATOR, Role.MEMBER, Role.MEMBER]
    for node in (alice, bob, carol):
        assert set(node.membership.members) == everyone
        assert node.standing.coordinator == alice.node_id
        assert node.term == 1
        assert set(node.links.peers) == everyone - {node.node_id}
    assert len(mesh.links) == 3
    assert mesh.sent(bob, alice, Join) and mesh.sent(carol, alice, Join)
    assert len(mesh.logged(carol, "join.completed")) == 1
    (registration,) = mesh.director
    assert registration == (alice.node_id, RegisterCoordinator(alice.election.record()))


def test_messages_sent_at_each_node_are_delivered_once_at_every_node() -> None:
    mesh = Mesh()
    nodes = group(mesh, 0, 0, 0, 0)
    sent = [mesh.send(node, f"round {r} from {node.me.name}") for r in range(2) for node in nodes]
    for node in nodes:
        assert sorted(mesh.delivered[node.node_id]) == sorted(sent)
    histories = [[m.id for m in node.replica.history] for node in nodes]
    assert all(h == histories[0] for h in histories)


def test_a_late_joiner_gets_the_whole_history_before_membership() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    sent = [mesh.send(node, f"before dave, {node.me.name}") for node in (alice, bob, carol)]
    dave = mesh.add("dave", seed=4)
    mesh.join(dave, alice)
    assert dave.role is Role.MEMBER
    assert [m.id for m in dave.replica.history] == [m.id for m in alice.replica.history]
    assert sorted(mesh.delivered[dave.node_id]) == sorted(sent)
    to_dave = [type(f) for s, d, f in mesh.frames if s == alice.node_id and d == dave.node_id]
    assert to_dave.index(Discussion) < to_dave.index(Nodes)
    later = mesh.send(dave, "hello from dave")
    for node in (alice, bob, carol):
        assert mesh.delivered[node.node_id][-1] == later


def test_a_history_still_streaming_in_is_not_asked_for_again() -> None:
    """A join that times out while its history is still arriving (a long one) must not
    ask again: the coordinator would send what is in flight a second time."""
    mesh = Mesh()
    (alice, _bob) = group(mesh, 0, 0)
    for i in range(3):
        mesh.send(alice, f"history {i}")
    dave = mesh.add("dave", seed=4)
    # The history arrives, the membership does not yet: dave is still joining.
    mesh.drop = lambda src, dst, frame: isinstance(frame, Nodes) and dst == dave.node_id
    mesh.join(dave, alice)
    assert dave.role is Role.JOINING and len(dave.replica.history) == 3
    asked = len(mesh.sent(dave, alice, Join))
    later = mesh.now + dave.config.join_timeout / 4
    mesh.route(dave, dave.join(alice.election.record(), later))  # the director, again
    assert len(mesh.sent(dave, alice, Join)) == asked
    # Nothing arrived for half a join_timeout: the history stalled, ask again.
    quiet = mesh.now + dave.config.join_timeout
    mesh.route(dave, dave.join(alice.election.record(), quiet))
    assert len(mesh.sent(dave, alice, Join)) == asked + 1


def test_a_heartbeat_ahead_triggers_a_discussion_request_and_repair() -> None:
    mesh = Mesh()
    alice, bob = group(mesh, 0, 0)
    mesh.drop = lambda src, dst, frame: isinstance(frame, Message)
    lost = mesh.send(alice, "lost in flight")
    assert mesh.delivered[bob.node_id] == []
    mesh.drop = lambda src, dst, frame: False
    mesh.tick(0.5)  # one digest showing the gap: it could be a message in flight
    assert mesh.delivered[bob.node_id] == []
    assert mesh.sent(bob, alice, DiscussionRequest) == []
    mesh.tick(0.5)  # the next one still shows it: a real gap
    assert mesh.delivered[bob.node_id] == [lost]
    (request,) = mesh.sent(bob, alice, DiscussionRequest)
    assert isinstance(request, DiscussionRequest) and request.vector_clock == {}
    (repair,) = mesh.sent(alice, bob, Discussion)
    assert isinstance(repair, Discussion) and [m.id for m in repair.messages] == [lost]
    assert mesh.logged(bob, "repair.requested") and mesh.logged(alice, "repair.sent")


def test_a_gap_filled_before_the_next_digest_is_not_repaired() -> None:
    """A digest raced by a message in flight shows a gap that is gone a beat later: no
    request, no copy sent twice."""
    mesh = Mesh()
    alice, bob = group(mesh, 0, 0)
    held: list[Frame] = []

    def hold(src: str, dst: str, frame: Frame) -> bool:
        if isinstance(frame, Message):
            held.append(frame)
            return True
        return False

    mesh.drop = hold
    sent = mesh.send(alice, "in flight")
    mesh.drop = lambda src, dst, frame: False
    mesh.tick(0.5)  # alice's digest shows the message bob has not had yet
    mesh.route(bob, bob.frame_received(alice.node_id, held[0], mesh.now))  # it arrives
    assert mesh.delivered[bob.node_id] == [sent]
    mesh.tick(0.5)
    mesh.tick(0.5)
    assert mesh.sent(bob, alice, DiscussionRequest) == []
    assert not mesh.logged(bob, "repair.requested")


# Local requests ----------------------------------------------------------------------------


def test_send_text_before_joining_is_not_ready() -> None:
    node = Mesh().add("alice", seed=1)
    with pytest.raises(NodeError) as caught:
        node.send_text("hi", TIMESTAMP, 0.0)
    assert caught.value.code == "not-ready"
    assert len(node.replica.history) == 0


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "bad-request"),
        ("  \n\t", "bad-request"),
        ("x" * 4097, "too-large"),
        ("é" * 2049, "too-large"),
    ],
)
def test_send_text_refuses_empty_and_oversized_text(text: str, code: str) -> None:
    mesh = Mesh()
    alice, _ = group(mesh, 0, 0)
    assert alice.config.max_text_bytes == 4096
    before = state(alice)
    with pytest.raises(NodeError) as caught:
        alice.send_text(text, TIMESTAMP, mesh.now)
    assert caught.value.code == code
    assert state(alice) == before


def test_send_text_at_the_size_limit_is_accepted() -> None:
    mesh = Mesh()
    alice, bob = group(mesh, 0, 0)
    sent = mesh.send(alice, "x" * alice.config.max_text_bytes)
    assert mesh.delivered[bob.node_id] == [sent]


# Bad input from peers ----------------------------------------------------------------------


@pytest.fixture
def trio_of_nodes() -> tuple[Mesh, list[Node]]:
    """Three members (term 3) that have each sent one message, so every clock counts all."""
    mesh = Mesh()
    nodes = group(mesh, 0, 0, 0, term=3)
    for node in nodes:
        mesh.send(node, f"first from {node.me.name}")
    return mesh, nodes


def test_a_valid_relay_of_another_origins_message_is_accepted(
    trio_of_nodes: tuple[Mesh, list[Node]],
) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    message = signed(mesh, alice)
    effects = mesh.plain(bob, bob.frame_received(carol.node_id, message, mesh.now))
    assert [e.message.id for e in effects if isinstance(e, Deliver)] == [message.id]
    # Relayed once, to the neighbours except where it came from and its origin.
    assert [e.peer for e in effects if isinstance(e, Send)] == []
    assert bob.replica.history.last(1) == [message]


def test_a_tampered_message_is_refused_and_the_genuine_one_still_taken(
    trio_of_nodes: tuple[Mesh, list[Node]],
) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    genuine = signed(mesh, alice, "the real text")
    tampered = evolve(genuine, message="words put in alice's mouth")
    # Whoever hands over an invalid message is hostile: banned, its link closed.
    expelled = [
        Disconnect(carol.node_id, "sent an invalid message: signature does not match node-id")
    ]
    refuse(mesh, bob, carol, tampered, "message.refused", "signature", expelled)
    assert carol.node_id in bob.links.banned
    # Straight from its origin too: a direct receiver checks what a relay receiver checks.
    refuse(
        mesh,
        bob,
        alice,
        evolve(genuine, signature="AAAA"),
        "message.refused",
        "signature",
        [Disconnect(alice.node_id, "sent an invalid message: signature does not match node-id")],
    )
    # The refusal did not mark the id as seen: the genuine copy is not lost.
    mesh.plain(bob, bob.frame_received(alice.node_id, genuine, mesh.now))
    assert bob.replica.history.last(1) == [genuine]


def test_a_message_whose_origin_was_changed_by_a_relay_is_refused(
    trio_of_nodes: tuple[Mesh, list[Node]],
) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    genuine = signed(mesh, alice)
    spoofed = evolve(genuine, node_id=carol.node_id)

    def expelled(peer: Node, why: str) -> list[Effect]:
        return [Disconnect(peer.node_id, f"sent an invalid message: {why}")]

    derived = "id is not derived from its origin and sequence number"
    refuse(mesh, bob, carol, spoofed, "message.refused", derived, expelled(carol, derived))
    with_carols_key = evolve(spoofed, public_key=mesh.identities[carol.node_id].public_key)
    refuse(mesh, bob, carol, with_carols_key, "message.refused", derived, expelled(carol, derived))
    # With carol's own id derived, the signature must still be carol's.
    carols_id = evolve(
        with_carols_key, id=message_id(carol.node_id, 1), vector_clock={carol.node_id: 1}
    )
    bad = "signature does not match node-id"
    refuse(mesh, bob, alice, carols_id, "message.refused", "signature", expelled(alice, bad))


@pytest.mark.parametrize("text", ["é" * 2049, "€" * 1366])
def test_a_message_over_the_text_limit_is_refused(
    trio_of_nodes: tuple[Mesh, list[Node]], text: str
) -> None:
    mesh, (alice, bob, _) = trio_of_nodes
    answer: list[Effect] = [
        Disconnect(alice.node_id, "sent an invalid message: text over the size limit")
    ]
    refuse(mesh, bob, alice, signed(mesh, alice, text), "message.refused", "size limit", answer)


def test_a_text_over_the_limit_in_characters_cannot_even_be_built() -> None:
    with pytest.raises(ValueError, match="message: length 4097 is over 4096"):
        Identity.generate(b"\x01" * 32).sign("a", TIMESTAMP, "x" * 4097, {"a": 1})


def test_a_relay_reusing_another_origins_id_cannot_shadow_the_genuine_message() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    mesh.drop = lambda src, dst, frame: dst == bob.node_id
    genuine = mesh.send(alice, "the real one")
    mesh.drop = lambda src, dst, frame: False
    clock = tick(carol.replica.delivered_clock(), carol.node_id)
    shadow = mesh.identities[carol.node_id].sign("carol", TIMESTAMP, "shadow", clock, id=genuine)
    mesh.route(carol, [Send(bob.node_id, shadow)])
    (refused,) = mesh.logged(bob, "message.refused")
    assert "not derived from its origin" in refused["reason"]
    for _ in range(3):
        mesh.tick(1.0)  # anti-entropy gets every chance to repair
    assert genuine in {m.id for m in bob.replica.history if m.node_id == alice.node_id}


def test_a_vector_clock_not_counting_its_origin_is_refused(
    trio_of_nodes: tuple[Mesh, list[Node]],
) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    without = {k: v for k, v in bob.replica.delivered_clock().items() if k != alice.node_id}
    why = "vector clock does not count the origin"
    answer: list[Effect] = [Disconnect(alice.node_id, f"sent an invalid message: {why}")]
    refuse(mesh, bob, alice, signed(mesh, alice, clock=without), "message.refused", why, answer)
    zero = {**without, alice.node_id: 0}
    refuse(mesh, bob, alice, signed(mesh, alice, clock=zero), "message.refused", why, answer)
    negative = {**tick(bob.replica.delivered_clock(), alice.node_id), carol.node_id: -1}
    with pytest.raises(ValueError, match="outside"):
        signed(mesh, alice, clock=negative)  # out of the wire's range: cannot even be built


def test_a_reused_sequence_number_cannot_replace_the_delivered_message(
    trio_of_nodes: tuple[Mesh, list[Node]],
) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    reused = signed(mesh, alice, "a second first message", clock=bob.replica.delivered_clock())
    original = next(m for m in bob.replica.history if m.id == reused.id)
    assert original.message != reused.message
    # Both validly signed by alice: an equivocation. Every node keeps the lower signature,
    # the proof (both versions) goes to every other peer, and alice is banned.
    effects = mesh.plain(bob, bob.frame_received(carol.node_id, reused, mesh.now))
    kept = min(original, reused, key=lambda m: m.signature)
    assert [m for m in bob.replica.history if m.id == reused.id] == [kept]
    proof = [e for e in effects if isinstance(e, Send)]
    assert [(e.peer, e.frame) for e in proof] == [(alice.node_id, Discussion([original, reused]))]
    assert Disconnect(alice.node_id, "equivocated") in effects
    assert alice.node_id in bob.links.banned
    assert len(mesh.logged(bob, "message.equivocation")) == 1


def test_a_duplicate_message_is_delivered_once(trio_of_nodes: tuple[Mesh, list[Node]]) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    sent = mesh.send(alice, "once")
    # In a full mesh carol got it straight from alice; bob, knowing that, relays nothing.
    copies = [f for s, d, f in mesh.frames if d == carol.node_id and isinstance(f, Message)]
    assert sum(f.id == sent for f in copies) == 1
    (message,) = [m for m in carol.replica.history if m.id == sent]
    before = state(carol)
    assert mesh.plain(carol, carol.frame_received(bob.node_id, message, mesh.now)) == []
    assert state(carol) == before
    for node in (alice, bob, carol):
        assert mesh.delivered[node.node_id].count(sent) == 1
        assert not mesh.logged(node, "message.refused")  # an honest duplicate is quiet


def test_nodes_from_a_peer_that_is_not_the_coordinator_is_refused(
    trio_of_nodes: tuple[Mesh, list[Node]],
) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    takeover = Nodes(
        node=[carol.me, bob.me], neighbours={}, term=bob.term, coordinator=carol.node_id
    )
    refuse(mesh, bob, carol, takeover, "frame.refused", "not the coordinator of this term")
    # Nor of a newer term: a new coordinator's signed claim comes first, never a nodes.
    newer = evolve(takeover, term=bob.term + 1)
    refuse(mesh, bob, carol, newer, "frame.refused", "not the coordinator of this term")
    naming_alice = evolve(takeover, coordinator=alice.node_id)
    refuse(mesh, bob, carol, naming_alice, "frame.refused", "not sent by the coordinator")


def test_nodes_of_an_older_term_is_refused(trio_of_nodes: tuple[Mesh, list[Node]]) -> None:
    mesh, (alice, bob, _) = trio_of_nodes
    old = Nodes(
        node=[alice.me, bob.me], neighbours={}, term=bob.term - 1, coordinator=alice.node_id
    )
    refuse(mesh, bob, alice, old, "frame.refused", "not the coordinator of this term")


def test_update_coordinator_with_a_stale_term_or_wrong_sender_is_refused(
    trio_of_nodes: tuple[Mesh, list[Node]],
) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    current = alice.election.terms.claim
    assert current is not None and (current.coordinator, current.term) == (alice.node_id, bob.term)
    carols = mesh.identities[carol.node_id]
    stale = sign_claim(carols, carol.node_id, bob.term - 1, carol.me.public_address)
    # Fenced: refused, and the sender is told who coordinates now (alice's signed claim).
    refuse(mesh, bob, carol, stale, "frame.refused", "older term", [Send(carol.node_id, current)])
    # A claim for another node, or unsigned, or forged, is refused outright.
    for_alice = sign_claim(carols, alice.node_id, bob.term + 1, "ws://trap")
    refuse(mesh, bob, carol, for_alice, "frame.refused", "not signed by its coordinator")
    unsigned = UpdateCoordinator(carol.node_id, bob.term + 1, carol.me.public_address)
    refuse(mesh, bob, carol, unsigned, "frame.refused", "not signed by its coordinator")
    forged = evolve(sign_claim(carols, carol.node_id, bob.term + 1, "ws://x"), term=bob.term + 2)
    refuse(mesh, bob, carol, forged, "frame.refused", "signature")
    # A term far beyond any seen would exhaust the range: refused.
    huge = sign_claim(carols, carol.node_id, 2**53 - 2, carol.me.public_address)
    refuse(mesh, bob, carol, huge, "frame.refused", "far above any seen")
    # A rival claim for the same term: the higher rank of the two wins.
    rival = sign_claim(carols, carol.node_id, bob.term, carol.me.public_address)
    mesh.now += 1.0  # past the fencing rate limit
    if bob.membership.rank(carol.node_id) < bob.membership.rank(alice.node_id):
        answer: list[Effect] = [Send(carol.node_id, current)]
        refuse(mesh, bob, carol, rival, "frame.refused", "lower coordinator", answer)
    else:
        mesh.plain(bob, bob.frame_received(carol.node_id, rival, mesh.now))
        assert (bob.standing.coordinator, bob.term) == (carol.node_id, current.term)


def test_leave_and_heartbeat_naming_another_node_are_refused(
    trio_of_nodes: tuple[Mesh, list[Node]],
) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    refuse(mesh, bob, carol, Leave(alice.node_id, bob.term), "frame.refused", "not the sender")
    refuse(mesh, alice, carol, Leave(bob.node_id, bob.term), "frame.refused", "not the sender")
    ahead = Heartbeat(alice.node_id, bob.term, {alice.node_id: 99})
    refuse(mesh, bob, carol, ahead, "frame.refused", "not the sender")


def test_join_sent_to_a_member_is_refused(trio_of_nodes: tuple[Mesh, list[Node]]) -> None:
    mesh, (_, bob, carol) = trio_of_nodes
    refuse(mesh, bob, carol, Join(), "frame.refused", "not the coordinator")


def test_handshake_frames_after_the_handshake_are_refused(
    trio_of_nodes: tuple[Mesh, list[Node]],
) -> None:
    mesh, (_, bob, carol) = trio_of_nodes
    refuse(mesh, bob, carol, mesh.hello(carol), "frame.refused", "handshake")
    refuse(mesh, bob, carol, Auth(proof="", signature=""), "frame.refused", "handshake")


def test_traffic_still_flows_after_refusals(trio_of_nodes: tuple[Mesh, list[Node]]) -> None:
    mesh, (alice, bob, carol) = trio_of_nodes
    mesh.plain(bob, bob.frame_received(carol.node_id, Join(), mesh.now))
    mesh.plain(
        bob, bob.frame_received(carol.node_id, evolve(signed(mesh, alice), message="x"), mesh.now)
    )
    sent = [mesh.send(node, "after") for node in (alice, bob, carol)]
    for node in (alice, bob, carol):
        assert mesh.delivered[node.node_id][-3:] == sent


@pytest.mark.parametrize("push", ["election", "claim"])
def test_a_term_pushed_up_at_one_node_does_not_split_the_discussion(push: str) -> None:
    """A member pushes one node's term up by max_term_step (within the window, so taken);
    that node's next election is one step beyond the others' window. Found by
    tests/core/test_adversary_machine.py: they refused it for good, two coordinators."""
    mesh = Mesh()
    alice, bob, carol, dave = group(mesh, 0, 0, 0, 0)  # dave is the lowest: the hostile one
    far = bob.term + bob.config.max_term_step
    if push == "election":
        frame: Frame = Election(dave.node_id, far)
    else:
        frame = sign_claim(mesh.identities[dave.node_id], dave.node_id, far, "")
    mesh.route(bob, bob.frame_received(dave.node_id, frame, mesh.now))
    for _ in range(40):
        mesh.tick(0.05)
        mesh.settle()
    honest = (alice, bob, carol)
    assert [n.role for n in honest].count(Role.COORDINATOR) == 1
    assert {n.standing.coordinator for n in honest} == {alice.node_id}
    assert len({n.term for n in honest}) == 1 and alice.term > far


def test_joining_a_coordinator_already_linked_asks_at_once() -> None:
    """A node sent back to joining, already linked to the coordinator the director names,
    sends ``join`` at once: no new link means no ``peer_connected`` to ask for it. Found by
    tests/core/test_adversary_machine.py (the node stayed joining for good)."""
    mesh = Mesh()
    alice, bob, _ = group(mesh, 0, 0, 0)
    bob.standing.role = Role.JOINING  # as after member.dropped, its join lost or refused
    mesh.route(bob, bob.join(alice.election.record(), mesh.now))
    assert bob.role is Role.MEMBER
    assert len(mesh.sent(bob, alice, Join)) == 2


def test_a_coordinator_yielding_to_the_director_takes_its_members_along() -> None:
    """Two coordinators of one term after a partition: the lower learns from the director
    that the higher holds the term and yields; its members must follow the higher too (it
    floods a hand-over it signs). Found by tests/core/test_adversary_machine.py: the
    members followed the deposed node for good, as it still beat to them."""
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    mesh.drop = lambda src, dst, frame: alice.node_id in (src, dst)
    for _ in range(12):
        mesh.tick(0.05)
    assert (bob.role, carol.standing.coordinator, carol.term) == (Role.COORDINATOR, bob.node_id, 2)
    holder = evolve(alice.election.record(), term=2)  # alice registered term 2 first
    mesh.route(bob, bob.director_refused(holder, mesh.now))
    assert (bob.role, bob.standing.coordinator) == (Role.MEMBER, alice.node_id)
    assert (carol.standing.coordinator, carol.term) == (alice.node_id, 2)


def test_a_member_in_a_newer_term_makes_the_coordinator_take_a_term_above_it() -> None:
    """A claim the coordinator never saw took a member to a newer term: the member refuses
    the coordinator's claims and ``nodes`` as old. Found by test_adversary_machine.py (the
    member stayed joining for good); the coordinator now reasserts above its heartbeat."""
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    carol.standing.term = 6  # as after adopting a claim of term 6 that alice and bob refused
    for _ in range(10):
        mesh.tick(0.05)
    assert alice.role is Role.COORDINATOR and alice.term > 6
    assert {(n.standing.coordinator, n.term) for n in (bob, carol)} == {(alice.node_id, alice.term)}
    assert carol.role is Role.MEMBER


def test_a_repair_carries_both_versions_of_an_equivocated_slot() -> None:
    """The winner of an equivocation may have been delivered on the loser's dependencies
    only (its own never come). A node that holds the winner alone gets the loser with it in
    a repair, or it never delivers the slot. Found by test_adversary_machine.py."""
    mesh = Mesh()
    alice, bob, carol, dave = group(mesh, 0, 0, 0, 0)  # dave equivocates
    key = mesh.identities[dave.node_id]
    for n in range(100):
        stuck = key.sign("dave", TIMESTAMP, f"a{n}", {dave.node_id: 1, "f" * 32: 1})
        free = key.sign("dave", TIMESTAMP, f"b{n}", {dave.node_id: 1})
        if stuck.signature < free.signature:  # the version that never delivers wins
            break
    mesh.route(carol, carol.frame_received(dave.node_id, stuck, mesh.now))
    mesh.drop = lambda src, dst, frame: carol.node_id in (src, dst)  # carol misses the proof
    mesh.route(alice, alice.frame_received(dave.node_id, free, mesh.now))
    mesh.route(alice, alice.frame_received(dave.node_id, stuck, mesh.now))
    assert [m.signature for m in alice.replica.history] == [stuck.signature]
    mesh.drop = lambda src, dst, frame: False
    for _ in range(20):
        mesh.tick(0.05)
    for node in (bob, carol):
        assert [m.signature for m in node.replica.history] == [stuck.signature]


# Leaving -----------------------------------------------------------------------------------


def test_coordinator_leave_hands_over_to_the_highest_priority_member() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 9, 7, 3, term=4)
    effects = mesh.leave(alice)
    handovers = [e.frame for e in effects if isinstance(e, Send)]
    handover = sign_claim(mesh.identities[alice.node_id], bob.node_id, 5, bob.me.public_address)
    assert handover in handovers
    assert Leave(alice.node_id, 5) in handovers
    assert bob.role is Role.COORDINATOR and carol.role is Role.MEMBER
    for node in (bob, carol):
        assert node.term == 5
        assert node.standing.coordinator == bob.node_id
        assert set(node.membership.members) == {bob.node_id, carol.node_id}
    # Two changes in term 5: bob takes over (alice still listed), then alice's leave.
    nodes = [f for f in mesh.sent(bob, carol, Nodes) if isinstance(f, Nodes) and f.term == 5][-1]
    assert nodes.coordinator == bob.node_id
    assert [m.node_id for m in nodes.node] == sorted([bob.node_id, carol.node_id])
    assert (bob.node_id, RegisterCoordinator(bob.election.record())) in mesh.director
    assert mesh.sent(alice, carol, Leave)
    sent = mesh.send(carol, "still here")
    assert mesh.delivered[bob.node_id][-1] == sent


def test_equal_priorities_hand_over_to_the_highest_node_id() -> None:
    mesh = Mesh()
    alice, *others = group(mesh, 2, 2, 2, 2)
    successor = max(others, key=lambda n: n.node_id)
    mesh.leave(alice)
    assert successor.role is Role.COORDINATOR
    assert [n.standing.coordinator for n in others] == [successor.node_id] * 3
    assert [n.role for n in others].count(Role.COORDINATOR) == 1


def test_hand_over_in_a_group_beyond_the_full_mesh_reaches_every_member() -> None:
    mesh = Mesh()
    alice, *others = group(mesh, 9, 0, 0, 0, 0)
    for i, name in enumerate(["f", "g", "h"]):
        mesh.join(mesh.add(name, seed=30 + i), alice)
    others = [n for n in mesh.nodes.values() if n is not alice]
    assert len(others) == 7 > alice.config.full_mesh_max
    assert any(len(n.membership.neighbours()) < 7 for n in others)
    mesh.leave(alice)
    mesh.settle()
    successor = max(others, key=lambda n: (n.me.priority, n.node_id))
    assert successor.role is Role.COORDINATOR
    for node in others:
        assert node.standing.coordinator == successor.node_id
        assert node.term == 2
        assert set(node.membership.members) == {n.node_id for n in others}
    sent = mesh.send(others[0], "after the hand-over")
    assert all(mesh.delivered[n.node_id][-1] == sent for n in others)


def test_a_member_leaving_is_removed_by_the_coordinator() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    mesh.leave(bob)
    assert (
        set(alice.membership.members)
        == set(carol.membership.members)
        == {alice.node_id, carol.node_id}
    )
    assert mesh.logged(alice, "member.left")
    assert not any(isinstance(e, UnregisterCoordinator) for _, e in mesh.director)


def test_the_last_node_leaving_unregisters_the_coordinator() -> None:
    mesh = Mesh()
    (alone,) = group(mesh, 0, term=2)
    assert mesh.plain(alone, alone.leave(mesh.now)) == [UnregisterCoordinator(term=2)]
    assert alone.role is Role.LEAVING


def test_the_discussion_ends_when_all_have_left_one_by_one() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    successor, other = sorted((bob, carol), key=lambda n: n.node_id, reverse=True)
    unregistered = []
    for node in (alice, other, successor):
        effects = mesh.leave(node)
        unregistered.append([e for e in effects if isinstance(e, UnregisterCoordinator)])
    assert unregistered == [[], [], [UnregisterCoordinator(term=2)]]
    assert mesh.nodes == {}


# Flood control -----------------------------------------------------------------------------


def test_flood_control_at_the_sender_and_at_every_receiver() -> None:
    mesh = Mesh()
    alice, bob, _ = group(mesh, 0, 0, 0)
    limited = evolve(alice.config, flood_rate=1.0, flood_burst=5)
    for node in mesh.nodes.values():
        node.replica.config = limited  # the part that applies the flood limits
    alice.replica._send_bucket = TokenBucket(limited.flood_rate, limited.flood_burst)
    for i in range(5):
        mesh.send(alice, f"burst {i}")
    with pytest.raises(NodeError) as refused:
        alice.send_text("one too many", TIMESTAMP, mesh.now)
    assert refused.value.code == "rate-limited"
    mesh.now += 1.0  # one more token
    mesh.send(alice, "a second later")
    # A modified alice ignores her own limit: her link carries twice the burst, no more.
    ident, start = mesh.identities[alice.node_id], alice.replica.delivered_clock()[alice.node_id]
    flood = [
        ident.sign(
            "alice",
            TIMESTAMP,
            f"flood {i}",
            {**alice.replica.delivered_clock(), alice.node_id: start + 1 + i},
        )
        for i in range(30)
    ]
    taken = [mesh.plain(bob, bob.frame_received(alice.node_id, m, mesh.now)) for m in flood]
    delivered = [e for effects in taken for e in effects if isinstance(e, Deliver)]
    # bob allows alice 2 x 5 at once and 2 a second: 10 - 5 (the burst) + 2 (a second) - 1.
    assert len(delivered) == 6
    assert bob.log.counters["messages.flood_dropped"] == 30 - len(delivered)
    assert len(mesh.logged(bob, "message.dropped")) == 1  # once, then a count
    mesh.plain(bob, bob.tick(mesh.now + limited.refusal_log_interval))
    (summary,) = [e for e in mesh.logged(bob, "message.dropped") if e.get("repeated")]
    assert summary["count"] == 30 - len(delivered) - 1


def test_keys_minted_to_fill_the_vector_clock_are_stopped_before_the_wire_bound() -> None:
    # A member mints a key per message: each new origin stays in every clock for good.
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    minted = [Identity.generate(i.to_bytes(32, "big")) for i in range(1, 801)]
    for key in minted:
        message = key.sign("mint", TIMESTAMP, "x", {key.node_id: 1})
        mesh.plain(bob, bob.frame_received(carol.node_id, message, mesh.now))
    assert len(bob.replica.delivered_clock()) == MAX_CLOCK_ENTRIES - MAX_MEMBERS
    assert bob.log.counters["messages.deferred"] == 800 - (MAX_CLOCK_ENTRIES - MAX_MEMBERS)
    # Heartbeats and its own messages still fit the wire, and members still get through
    # (alice fetches what bob holds once two of his digests show it).
    mesh.tick(0.5)
    mesh.tick(0.5)
    sent = mesh.send(bob, "still talking")
    assert sent in mesh.delivered[alice.node_id]
    assert mesh.send(alice, "members too") in mesh.delivered[bob.node_id]
