"""The relay: a spanning tree of the overlay per origin (chatd.core.relay), alone and in a
discussion of sans-I/O nodes: in steady state each member receives each message once."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from chat.wire import Message
from chatd.core.node import Node
from chatd.core.overlay import assign
from chatd.core.relay import Relay, tree
from tests.core.mesh import Mesh


def distances(overlay: dict[str, list[str]], root: str) -> dict[str, int]:
    seen, queue = {root: 0}, deque([root])
    while queue:
        node = queue.popleft()
        for peer in overlay[node]:
            if peer not in seen:
                seen[peer] = seen[node] + 1
                queue.append(peer)
    return seen


def depths(children: dict[str, list[str]], root: str) -> dict[str, int]:
    out, stack = {root: 0}, [root]
    while stack:
        node = stack.pop()
        for child in children[node]:
            assert child not in out, f"{child} has two parents"
            out[child] = out[node] + 1
            stack.append(child)
    return out


@given(n=st.integers(1, 80), full_mesh_max=st.integers(1, 10), root=st.integers(0, 79))
def test_a_tree_spans_the_overlay_along_shortest_paths(
    n: int, full_mesh_max: int, root: int
) -> None:
    members = [f"{i:032x}" for i in range(n)]
    overlay = assign(members, full_mesh_max)
    origin = members[root % n]
    children = tree(overlay, origin)
    # Every member once, each at its distance from the origin: a message takes a
    # shortest path, and crosses n - 1 links in all.
    assert depths(children, origin) == distances(overlay, origin)
    assert sum(len(c) for c in children.values()) == n - 1
    for node, below in children.items():
        assert set(below) <= set(overlay[node])


def test_a_child_without_a_link_is_skipped_over_to_its_children() -> None:
    overlay = {"a": ["b"], "b": ["a", "c", "d"], "c": ["b"], "d": ["b"]}
    relay = Relay()
    assert relay.targets("a", "a", overlay, {"b"}) == ["b"]
    assert relay.targets("a", "a", overlay, {"c", "d"}) == ["c", "d"]  # b is down
    assert relay.targets("b", "a", overlay, {"a", "c", "d"}) == ["c", "d"]
    assert relay.targets("c", "a", overlay, {"b"}) == []


def test_a_new_overlay_is_followed_at_once() -> None:
    relay = Relay()
    assert relay.targets("a", "a", {"a": ["b"], "b": ["a"]}, {"b", "c"}) == ["b"]
    assert relay.targets("a", "a", {"a": ["b", "c"], "b": ["a"], "c": ["a"]}, {"b", "c"}) == [
        "b",
        "c",
    ]


def a_discussion(mesh: Mesh, size: int) -> list[Node]:
    nodes = [mesh.add(f"n{i}", seed=40 + i) for i in range(size)]
    first = max(nodes, key=lambda n: n.node_id)  # nobody outranks it: no election
    mesh.start(first)
    for node in nodes:
        if node is not first:
            mesh.join(node, first)
    mesh.settle()
    mesh.tick(0.5)
    mesh.settle()
    return nodes


def test_every_member_receives_each_message_once_beyond_the_full_mesh() -> None:
    mesh = Mesh()
    nodes = a_discussion(mesh, 12)
    assert any(len(n.membership.neighbours()) < 11 for n in nodes)  # a ring with chords
    before = len(mesh.frames)
    sent = [mesh.send(node, f"from {node.me.name}") for node in nodes]
    carried = [f for _, _, f in mesh.frames[before:] if isinstance(f, Message)]
    assert len(carried) == len(sent) * (len(nodes) - 1)
    assert sum(n.log.counters["messages.duplicate"] for n in nodes) == 0
    for node in nodes:
        assert sorted(mesh.delivered[node.node_id][-len(sent) :]) == sorted(sent)


def test_a_dead_member_s_subtree_still_gets_messages_from_its_parent() -> None:
    mesh = Mesh()
    nodes = a_discussion(mesh, 12)
    origin = nodes[0]
    children = tree(origin.membership.overlay, origin.node_id)
    inner = next(n for n in nodes if children[n.node_id] and n is not origin)
    below = set(children[inner.node_id])
    # The inner node's links go down; before the coordinator notices, its children are
    # sent the message by whoever would have sent it to the inner node, if linked to them.
    for peer in list(inner.links.peers):
        mesh.disconnect(inner.node_id, peer)
    sent = mesh.send(origin, "around the gap")
    parent = next(p for p, c in children.items() if inner.node_id in c)
    reached = {n.node_id for n in nodes if sent in mesh.delivered[n.node_id]}
    linked_to_parent = below & set(mesh.nodes[parent].links.peers)
    assert linked_to_parent and linked_to_parent <= reached
    assert inner.node_id not in reached
