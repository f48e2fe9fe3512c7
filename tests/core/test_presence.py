"""Presence events and renames in the sans-I/O core: deterministic, in memory (``Mesh``)."""

from __future__ import annotations

import pytest

from chat.wire import Nodes, Rename
from chatd.core.node import Node, NodeError, Role
from chatd.core.presence import Presence, Roster
from tests.core.mesh import Mesh
from tests.core.test_node import group

# Roster: the pure derivation -----------------------------------------------------------------


def events(presences: list[Presence]) -> list[tuple[str, str, str | None]]:
    return [(p.event, p.name, p.old_name) for p in presences]


def test_the_first_membership_is_a_silent_baseline() -> None:
    roster = Roster()
    assert roster.update({"a": "alice", "b": "bob"}, "a", {}) == []
    assert roster.update({"a": "alice", "b": "bob"}, "a", {}) == []


def test_roster_says_what_changed_departures_first_then_arrivals_renames_coordinator() -> None:
    roster = Roster()
    roster.update({"a": "alice", "b": "bob", "c": "carol"}, "a", {})
    changed = roster.update(
        {"b": "bobby", "d": "dave"}, "b", {"a": "timed-out", "c": "left", "x": "left"}
    )
    assert events(changed) == [
        ("timed-out", "alice", None),
        ("left", "carol", None),
        ("joined", "dave", None),
        ("renamed", "bobby", "bob"),
        ("coordinator", "bobby", None),
    ]
    assert all(p.at == "" for p in changed)  # the shell stamps the time


def test_a_departure_without_a_reason_is_a_leave_and_a_known_node_rejoins() -> None:
    roster = Roster()
    roster.update({"a": "alice", "b": "bob"}, "a", {})
    assert events(roster.update({"a": "alice"}, "a", {})) == [("left", "bob", None)]
    assert events(roster.update({"a": "alice", "b": "bob"}, "a", {})) == [("rejoined", "bob", None)]


def test_a_new_coordinator_is_announced_once_it_is_a_listed_member() -> None:
    roster = Roster()
    roster.update({"a": "alice", "b": "bob"}, "a", {})
    assert roster.update({"a": "alice", "b": "bob"}, "z", {}) == []  # not listed: no name yet
    assert events(roster.update({"b": "bob", "z": "zed"}, "z", {"a": "timed-out"})) == [
        ("timed-out", "alice", None),
        ("joined", "zed", None),
        ("coordinator", "zed", None),
    ]
    assert roster.update({"b": "bob", "z": "zed"}, "z", {}) == []


# Nodes: events from real membership changes ----------------------------------------------------


def seen(mesh: Mesh, node: Node) -> list[tuple[str, str, str | None]]:
    return events(mesh.presence[node.node_id])


def test_joins_are_announced_to_those_already_there() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    assert seen(mesh, alice) == [("joined", "bob", None), ("joined", "carol", None)]
    assert seen(mesh, bob) == [("joined", "carol", None)]
    assert seen(mesh, carol) == []  # its own join is the baseline
    for node in (alice, bob, carol):
        assert node.membership.departed == {}


def test_a_clean_leave_is_left_everywhere_and_the_reason_is_on_the_wire() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    mesh.leave(carol)
    assert seen(mesh, alice)[-1] == ("left", "carol", None)
    assert seen(mesh, bob)[-1] == ("left", "carol", None)
    (last, *_) = reversed(mesh.sent(alice, bob, Nodes))
    assert isinstance(last, Nodes) and last.departed == {carol.node_id: "left"}


def test_a_crash_is_timed_out_everywhere() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    crash(mesh, carol)
    for _ in range(20):
        mesh.tick(0.05)
    for node in (alice, bob):
        assert seen(mesh, node)[-1] == ("timed-out", "carol", None)
        assert ("left", "carol", None) not in seen(mesh, node)


def crash(mesh: Mesh, node: Node) -> None:
    """Gone at once, telling nobody (its links drop; as kill -9 on a LAN)."""
    for link in [link for link in mesh.links if node.node_id in link]:
        (other,) = link - {node.node_id}
        mesh.disconnect(node.node_id, other)
    del mesh.nodes[node.node_id]


def test_a_member_taken_for_dead_that_comes_back_rejoined() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    mute = carol.node_id
    mesh.drop = lambda src, dst, frame: mute in (src, dst)
    for _ in range(20):
        mesh.now += 0.05
        for node in (alice, bob):  # carol is paused
            mesh.route(node, node.tick(mesh.now))
    assert seen(mesh, alice)[-1] == ("timed-out", "carol", None)
    mesh.drop = lambda src, dst, frame: False
    mesh.tick(0.05)  # carol resumes (and forgives the gap)
    mesh.settle()
    for _ in range(10):
        mesh.tick(0.05)
        mesh.settle()
    assert carol.role is Role.MEMBER
    assert seen(mesh, alice)[-1] == ("rejoined", "carol", None)
    assert seen(mesh, bob)[-1] == ("rejoined", "carol", None)


def test_a_coordinator_hand_over_is_left_then_coordinator() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 10, 5, 0)  # bob ranks highest after alice
    mesh.leave(alice)
    mesh.settle()
    assert bob.role is Role.COORDINATOR
    assert seen(mesh, bob)[-2:] == [("left", "alice", None), ("coordinator", "bob", None)]
    # carol follows bob's claim first, then his membership says alice left.
    assert seen(mesh, carol) == [("coordinator", "bob", None), ("left", "alice", None)]


# Renames --------------------------------------------------------------------------------------


def names(node: Node) -> dict[str, str]:
    return {m: r.name for m, r in node.membership.members.items()}


def test_a_member_renames_through_the_coordinator_and_everyone_sees_it() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 0, 0, 0)
    mesh.route(bob, bob.rename("bee", mesh.now))
    assert mesh.sent(bob, alice, Rename) == [Rename("bee")]
    for node in (alice, bob, carol):
        assert names(node)[bob.node_id] == "bee"
        assert seen(mesh, node)[-1] == ("renamed", "bee", "bob")
    message, _effects = bob.send_text("hi", "2024-01-01T00:00:00Z", mesh.now)
    assert message.name == "bee"
    assert alice.links.peers[bob.node_id].name == "bee"  # a later join of bob keeps it


def test_the_coordinator_renames_itself_directly() -> None:
    mesh = Mesh()
    alice, bob, _carol = group(mesh, 0, 0, 0)
    mesh.route(alice, alice.rename("al", mesh.now))
    assert not mesh.sent(alice, bob, Rename)
    assert seen(mesh, alice)[-1] == seen(mesh, bob)[-1] == ("renamed", "al", "alice")


def test_an_invalid_or_too_frequent_rename_is_refused_with_a_reason() -> None:
    mesh = Mesh()
    alice, bob, _carol = group(mesh, 0, 0, 0)
    with pytest.raises(NodeError, match="cannot contain a format character") as bad:
        mesh.plain(bob, bob.rename("b\u202eob", mesh.now))
    assert bad.value.code == "bad-request"
    for i in range(bob.config.rename_burst):
        mesh.route(bob, bob.rename(f"bob{i}", mesh.now))
    with pytest.raises(NodeError) as limited:
        mesh.plain(bob, bob.rename("once-more", mesh.now))
    assert limited.value.code == "rate-limited"
    assert names(alice)[bob.node_id] == f"bob{bob.config.rename_burst - 1}"


def test_the_coordinator_limits_renames_per_member() -> None:
    mesh = Mesh()
    alice, bob, _carol = group(mesh, 0, 0, 0)
    burst = alice.config.rename_burst
    for i in range(burst + 2):  # a member that ignores its own limit (answers not carried)
        mesh.plain(alice, alice.frame_received(bob.node_id, Rename(f"b{i}"), mesh.now))
    assert names(alice)[bob.node_id] == f"b{burst - 1}"
    refused = [e for e in mesh.logged(alice, "frame.refused") if e["type"] == "rename"]
    assert refused and refused[0]["reason"] == "renames too often"


def test_a_rename_lost_with_the_coordinator_is_asserted_again() -> None:
    mesh = Mesh()
    alice, bob, carol = group(mesh, 10, 0, 5)  # carol takes over when alice goes
    mesh.drop = lambda src, dst, frame: isinstance(frame, Rename)
    mesh.route(bob, bob.rename("bee", mesh.now))
    assert bob.me.name == "bee" and names(bob)[bob.node_id] == "bob"
    mesh.drop = lambda src, dst, frame: False
    mesh.leave(alice)  # before the coordinator heard of it
    mesh.settle()
    assert carol.role is Role.COORDINATOR
    for _ in range(int(bob.config.rename_retry / 0.05) + 2):
        mesh.tick(0.05)
        mesh.settle()
    assert names(carol)[bob.node_id] == names(bob)[bob.node_id] == "bee"
    assert seen(mesh, carol)[-1] == ("renamed", "bee", "bob")
    asked = mesh.sent(bob, carol, Rename)
    assert asked and len(asked) <= 2  # asked again, not at every heartbeat
