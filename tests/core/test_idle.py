"""What an idle discussion costs, driven through the sans-I/O mesh: links the overlay does
not need are closed by the end that opened them, digests stop once peers agree, heartbeats
run only between the coordinator and its links, and a silent coordinator is suspected at
its deadline."""

from __future__ import annotations

from chat.wire import Heartbeat
from chatd.config import TEST
from chatd.core.node import Node, Role
from tests.core.mesh import Mesh
from tests.core.test_election import crash, run


def big_group(mesh: Mesh, n: int) -> list[Node]:
    """``n`` nodes, beyond the full mesh, joined one by one; the founder outranks them."""
    nodes = [mesh.add(f"n{i}", seed=i + 1, priority=n - i) for i in range(n)]
    mesh.start(nodes[0])
    for node in nodes[1:]:
        mesh.join(node, nodes[0])
    return nodes


def linked(mesh: Mesh, node: Node) -> set[str]:
    return {peer for link in mesh.links if node.node_id in link for peer in link} - {node.node_id}


def needed(node: Node) -> set[str]:
    """The links the overlay needs at ``node``: its neighbours and its coordinator; for
    the coordinator, every member."""
    if node.role is Role.COORDINATOR:
        return set(node.membership.members) - {node.node_id}
    return {*node.membership.neighbours(), node.standing.coordinator or ""}


def beats(mesh: Mesh) -> list[tuple[str, str]]:
    return [(src, dst) for src, dst, frame in mesh.frames if isinstance(frame, Heartbeat)]


def test_links_the_overlay_does_not_need_are_closed_by_their_opener() -> None:
    mesh = Mesh()
    nodes = big_group(mesh, 10)
    coordinator = nodes[0]
    # Joining one by one (a full mesh first, then a ring with chords) left extra links.
    extra = sum(len(linked(mesh, n) - needed(n)) for n in nodes)
    assert extra > 0
    run(mesh, 3 * TEST.link_linger)
    for node in nodes:
        assert linked(mesh, node) == needed(node), node.me.name
    closed = [e for n in nodes for e in mesh.logged(n, "link.unneeded")]
    assert len(closed) == extra // 2  # each extra link counted at both ends, closed at one
    assert coordinator.role is Role.COORDINATOR and not mesh.logged(coordinator, "link.unneeded")
    # Nothing is dialed again: the links stay as they are.
    before = set(mesh.links)
    run(mesh, 2 * TEST.link_linger)
    assert mesh.links == before
    sent = mesh.send(nodes[5], "after the links were closed")
    assert all(mesh.delivered[n.node_id][-1] == sent for n in nodes)


def test_an_idle_discussion_sends_heartbeats_only_between_coordinator_and_members() -> None:
    mesh = Mesh()
    nodes = big_group(mesh, 8)
    coordinator, members = nodes[0].node_id, nodes[1:]
    mesh.send(nodes[3], "something to agree on")
    run(mesh, 2.0)
    mesh.frames.clear()
    run(mesh, 1.0)
    sent = beats(mesh)
    assert all(coordinator in (src, dst) for src, dst in sent), "digests between members"
    for member in members:
        down = sent.count((coordinator, member.node_id))
        up = sent.count((member.node_id, coordinator))
        assert down >= 1.0 / TEST.heartbeat_interval / 2, member.me.name
        assert 1 <= up < down, member.me.name  # members beat the coordinator more slowly
        assert not member.liveness.digests_pending  # no wake-up for digests


def test_a_new_message_sends_digests_to_neighbours_until_they_agree() -> None:
    mesh = Mesh()
    nodes = big_group(mesh, 8)
    coordinator = nodes[0].node_id
    run(mesh, 2.0)
    mesh.frames.clear()
    mesh.send(nodes[3], "news")
    run(mesh, 2.0)
    between = [(s, d) for s, d in beats(mesh) if coordinator not in (s, d)]
    assert between  # the delivered clocks changed: neighbours compare them
    assert {s for s, _ in between} <= {n.node_id for n in nodes}
    mesh.frames.clear()
    run(mesh, 1.0)
    assert all(coordinator in (s, d) for s, d in beats(mesh))  # agreed: quiet again


def test_the_coordinator_skips_a_heartbeat_to_a_peer_it_just_sent_a_frame() -> None:
    mesh = Mesh()
    nodes = big_group(mesh, 4)
    run(mesh, 1.0)
    coordinator, interval = nodes[0], TEST.heartbeat_interval
    due = coordinator.liveness.last_beat + interval
    mesh.now = due - interval / 4
    mesh.frames.clear()
    mesh.send(coordinator, "traffic")  # a message to every member (a full mesh)
    mesh.route(coordinator, coordinator.tick(due))
    assert not [d for s, d in beats(mesh) if s == coordinator.node_id]  # it was the beat
    mesh.route(coordinator, coordinator.tick(due + interval))  # no traffic since
    members = {n.node_id for n in nodes[1:]}
    assert {d for s, d in beats(mesh) if s == coordinator.node_id} == members


def test_a_silent_coordinator_is_suspected_at_its_deadline() -> None:
    mesh = Mesh()
    nodes = big_group(mesh, 3)
    run(mesh, 0.5)
    coordinator, member = nodes[0], nodes[2]
    crash(mesh, coordinator)
    deadline = member.liveness.suspect_at(coordinator.node_id)
    # The member's timer is due by then, whatever its heartbeat schedule.
    while (due := member.next_deadline()) < deadline:
        mesh.now = due
        mesh.route(member, member.tick(due))
    assert due == deadline
    assert not mesh.logged(member, "coordinator.suspected")
    mesh.now = deadline
    mesh.route(member, member.tick(deadline))
    assert mesh.logged(member, "coordinator.suspected")


def by_deadlines(mesh: Mesh, seconds: float) -> dict[str, int]:
    """Play the shell's timer: each node ticks at its own next deadline, nothing else;
    how often each woke."""
    wakes = {node_id: 0 for node_id in mesh.nodes}
    end = mesh.now + seconds
    while (node := min(mesh.nodes.values(), key=Node.next_deadline)).next_deadline() <= end:
        mesh.now = max(mesh.now, node.next_deadline())
        wakes[node.node_id] += 1
        mesh.route(node, node.tick(mesh.now))
        mesh.settle()
        assert sum(wakes.values()) < 10_000, "a timer spins"
    mesh.now = end
    return wakes


def test_an_idle_node_wakes_only_when_something_is_due() -> None:
    mesh = Mesh()
    nodes = big_group(mesh, 8)
    run(mesh, 2.0)
    wakes = by_deadlines(mesh, 2.0)
    coordinator, members = nodes[0].node_id, nodes[1:]
    # Its heartbeats and its registrations with the director.
    assert wakes[coordinator] <= 2.0 / TEST.heartbeat_interval + 2.0 / TEST.director_interval + 1
    for member in members:  # its heartbeats to the coordinator only, nothing per digest
        assert wakes[member.node_id] <= 2.0 / TEST.member_heartbeat_interval + 1
    assert all(n.standing.coordinator == coordinator for n in nodes)
    assert not any(mesh.logged(n, "coordinator.suspected") for n in nodes)


def test_on_deadlines_alone_a_crashed_coordinator_is_replaced_with_no_false_pause() -> None:
    mesh = Mesh()
    nodes = big_group(mesh, 8)
    run(mesh, 2.0)
    crash(mesh, nodes[0])
    by_deadlines(mesh, 3.0)
    survivors = nodes[1:]
    assert {n.standing.coordinator for n in survivors} == {nodes[1].node_id}
    assert nodes[1].role is Role.COORDINATOR
    assert all(nodes[0].node_id not in n.membership.members for n in survivors)
    assert not any(mesh.logged(n, "node.paused") for n in survivors)
    sent = mesh.send(nodes[4], "after the failover")
    assert all(mesh.delivered[n.node_id][-1] == sent for n in survivors)
