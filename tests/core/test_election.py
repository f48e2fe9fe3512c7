"""The bully election and fencing, driven by hand through the sans-I/O mesh."""

from __future__ import annotations

from chat.identity import sign_claim
from chat.wire import Election, Vote
from chatd.core.node import Node, Role, Send
from tests.core.mesh import Mesh
from tests.core.test_node import group


def crash(mesh: Mesh, node: Node) -> None:
    """Take a node away without a word, as kill -9 would."""
    for link in [link for link in mesh.links if node.node_id in link]:
        (other,) = link - {node.node_id}
        mesh.disconnect(node.node_id, other)
    del mesh.nodes[node.node_id]


def run(mesh: Mesh, seconds: float, step: float = 0.05) -> None:
    for _ in range(round(seconds / step)):
        mesh.tick(step)
        mesh.settle()


def test_a_silent_coordinator_is_replaced_by_the_highest_survivor() -> None:
    mesh = Mesh()
    alice, bob, carol, dave = group(mesh, 9, 1, 5, 3)
    run(mesh, 0.2)
    crash(mesh, alice)
    run(mesh, 1.5)
    for node in (bob, carol, dave):
        assert node.standing.coordinator == carol.node_id
        assert node.term == carol.term > 1
        assert alice.node_id not in node.membership.members
    assert carol.role is Role.COORDINATOR
    assert [n.role for n in (bob, dave)] == [Role.MEMBER, Role.MEMBER]
    assert mesh.logged(bob, "coordinator.suspected") or mesh.logged(dave, "coordinator.suspected")
    assert mesh.logged(carol, "coordinator.elected")
    sent = mesh.send(bob, "after the election")
    assert all(mesh.delivered[n.node_id][-1] == sent for n in (bob, carol, dave))


def test_a_lower_candidate_is_outvoted_and_the_higher_node_takes_over() -> None:
    mesh = Mesh()
    _, bob, carol = group(mesh, 9, 1, 5)
    run(mesh, 0.2)
    effects = mesh.plain(
        bob, bob.frame_received(carol.node_id, Election(carol.node_id, 2), mesh.now)
    )
    assert effects == []  # elections go up, never down: bob ignores carol's
    answer = mesh.plain(
        carol, carol.frame_received(bob.node_id, Election(bob.node_id, 2), mesh.now)
    )
    assert Send(bob.node_id, Vote(True, 2, carol.node_id)) in answer
    assert carol.election.candidacy is not None  # carol stands herself, bully style


def test_election_and_vote_from_a_non_member_are_refused() -> None:
    mesh = Mesh()
    _, bob, _ = group(mesh, 9, 1, 5)
    stranger = mesh.add("mallory", seed=40)
    mesh.connect(stranger, bob)
    term = bob.term
    assert (
        mesh.plain(
            bob, bob.frame_received(stranger.node_id, Election(stranger.node_id, 50), mesh.now)
        )
        == []
    )
    assert (
        mesh.plain(
            bob, bob.frame_received(stranger.node_id, Vote(True, 50, stranger.node_id), mesh.now)
        )
        == []
    )
    assert bob.term == term and bob.election.candidacy is None
    reasons = [e["reason"] for e in mesh.logged(bob, "frame.refused")]
    assert reasons.count("not a member") == 2


def test_a_flood_of_elections_costs_one_term_and_one_answer_each() -> None:
    mesh = Mesh()
    alice, bob, _ = group(mesh, 9, 1, 5)
    run(mesh, 0.2)
    replies = []
    for _ in range(1000):
        replies += mesh.plain(
            alice, alice.frame_received(bob.node_id, Election(bob.node_id, 2), mesh.now)
        )
    assert alice.role is Role.COORDINATOR
    assert alice.term == 3  # reasserted once over the candidate's term
    votes = [e for e in replies if isinstance(e, Send) and isinstance(e.frame, Vote)]
    # The rest came too fast for an honest candidate: each only gets its vote, nothing more.
    assert len(votes) == 1000
    # ...and logged once, then summed up in one line with a count when the interval ends.
    refused = [e for e in mesh.logged(alice, "frame.refused") if "too often" in e["reason"]]
    assert len(refused) == 1
    mesh.plain(alice, alice.tick(mesh.now + alice.config.refusal_log_interval))
    (summary,) = [e for e in mesh.logged(alice, "frame.refused") if e.get("repeated")]
    assert summary["count"] == 998
    # An honest candidate standing again an election_timeout later is answered.
    mesh.now += alice.config.election_timeout
    again = mesh.plain(alice, alice.frame_received(bob.node_id, Election(bob.node_id, 4), mesh.now))
    assert any(isinstance(e, Send) and isinstance(e.frame, Vote) for e in again)


def test_a_coordinator_fenced_with_a_lower_nodes_newer_claim_takes_a_term_above_it() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 9, 1, 5)
    claim = sign_claim(mesh.identities[bob.node_id], bob.node_id, 7, bob.me.public_address)
    mesh.route(carol, carol.frame_received(bob.node_id, claim, mesh.now))
    # carol outranks bob: she does not follow him even for a moment; she stands above term
    # 7 and, asking alice (higher), is answered by alice reasserting above it.
    assert carol.standing.coordinator == alice.node_id and carol.term == alice.term
    assert alice.role is Role.COORDINATOR and alice.term > 7
    assert not mesh.logged(carol, "coordinator.deposed")
    # bob, a lower member that claimed, follows alice's newer term.
    assert (bob.standing.coordinator, bob.term) == (alice.node_id, alice.term)


def test_a_node_that_was_paused_suspects_nobody_for_its_own_silence() -> None:
    mesh = Mesh()
    alice, bob, _ = group(mesh, 9, 1, 5)
    run(mesh, 0.2)
    mesh.plain(bob, bob.tick(mesh.now + 5.0))  # bob's first look after a five-second stop
    assert mesh.logged(bob, "node.paused")
    assert not mesh.logged(bob, "coordinator.suspected")
    assert bob.election.candidacy is None and bob.standing.coordinator == alice.node_id
