"""The core/shell interface (issue 10): dialing, log lines, malformed frames and the
snapshot are effects and a value, and the role changes only as the election's table says."""

from __future__ import annotations

import pytest

from chatd.core.effects import Dial, Log, Role, Undial
from chatd.core.election import TRANSITIONS, IllegalTransition
from tests.core.mesh import Mesh
from tests.core.test_node import group


def test_a_member_asks_once_to_dial_the_coordinator_and_stops_when_leaving() -> None:
    mesh = Mesh()
    alice = mesh.add("alice", seed=7)
    bob = mesh.add("bob", seed=11)
    mesh.start(alice)
    asked = bob.join(alice.election.record(), mesh.now)
    assert [e for e in asked if isinstance(e, Dial)] == [
        Dial(alice.node_id, alice.me.public_address)
    ]
    mesh.route(bob, asked)
    mesh.settle()
    assert bob.role is Role.MEMBER
    # Linked and listed: nothing to ask again, however many events pass.
    again = bob.tick(mesh.now + 0.05) + bob.tick(mesh.now + 0.1)
    assert not [e for e in again if isinstance(e, Dial | Undial)]
    left = bob.leave(mesh.now + 0.1)
    assert [e for e in left if isinstance(e, Undial)] == [Undial(alice.node_id)]


def test_log_lines_are_effects_that_carry_the_term() -> None:
    mesh = Mesh()
    alice = mesh.add("alice", seed=7)
    effects = alice.start_discussion(4, mesh.now)
    (started,) = [e for e in effects if isinstance(e, Log) and e.event == "discussion.started"]
    assert started.level == "info"
    assert started.fields["term"] == 4


def test_a_malformed_frame_is_logged_once_then_summed() -> None:
    mesh = Mesh()
    alice, bob = group(mesh, 0, 0)
    first = alice.frame_malformed(bob.node_id, "not json", mesh.now)
    second = alice.frame_malformed(bob.node_id, "not json", mesh.now)
    (line,) = [e for e in first if isinstance(e, Log)]
    assert (line.level, line.event, line.fields["peer"]) == (
        "warning",
        "frame.malformed",
        bob.node_id,
    )
    assert not [e for e in second if isinstance(e, Log)]
    assert alice.snapshot().counters["frames.malformed"] == 2
    interval = alice.config.refusal_log_interval
    summary = [
        e
        for e in alice.tick(mesh.now + interval)
        if isinstance(e, Log) and e.event == "frame.malformed"
    ]
    assert [e.fields["count"] for e in summary] == [1]


def test_the_snapshot_shows_what_status_and_who_need() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    sent = mesh.send(bob, "hello")
    snap = bob.snapshot()
    assert (snap.node_id, snap.name, snap.role, snap.ready) == (
        bob.node_id,
        "bob",
        Role.MEMBER,
        True,
    )
    assert snap.coordinator == alice.node_id and snap.term == alice.term
    assert [m.node_id for m in snap.members] == sorted(n.node_id for n in (alice, bob, carol))
    assert set(snap.peers) == {alice.node_id, carol.node_id}
    assert snap.messages == 1 and snap.vector_clock == {bob.node_id: 1}
    assert [m.id for m in bob.recent(5)] == [m.id for m in bob.messages()] == [sent]


@pytest.mark.parametrize(
    ("role", "cause"),
    [
        (Role.LEAVING, "elected"),
        (Role.MEMBER, "listed"),
        (Role.COORDINATOR, "start"),
        (Role.JOINING, "deposed"),
    ],
)
def test_a_role_change_the_table_does_not_allow_raises(role: Role, cause: str) -> None:
    mesh = Mesh()
    node = mesh.add("alice", seed=7)
    assert (role, cause) not in TRANSITIONS
    node.standing.role = role
    with pytest.raises(IllegalTransition):
        node.election.set_role(cause)  # type: ignore[arg-type]
    assert node.role is role


def test_every_role_may_leave_and_leaving_is_final() -> None:
    assert all(TRANSITIONS[role, "leave"] is Role.LEAVING for role in Role)
    assert [cause for (role, cause) in TRANSITIONS if role is Role.LEAVING] == ["leave"]
