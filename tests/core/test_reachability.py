"""Issue 13's rules in the core: reachable nodes outrank dial-out-only ones, the dialable
end of a link is dialed, and the overlay attaches dial-out-only members to reachable ones.

The ``Mesh`` plays NAT: a dial to a dial-out-only node connects only from its own home.
"""

from __future__ import annotations

import attrs

from chatd.core.membership import home_of
from chatd.core.node import Node, Role
from chatd.core.overlay import assign
from tests.core.mesh import Mesh
from tests.core.test_election import crash, run
from tests.core.test_overlay import connected


def natted(mesh: Mesh, homes: dict[str, str]) -> None:
    """Behind NAT: ``homes`` maps a node-id to its home; such a node is dialed only from
    the same home."""

    def dialable(src: Node, dst: Node) -> bool:
        home = homes.get(dst.node_id)
        return home is None or homes.get(src.node_id) == home

    mesh.dialable = dialable


# Where the director sees each home's nodes come from: its router's public address.
ROUTERS = {"192.168.1": "203.0.113.21", "192.168.2": "203.0.113.22", "10.1.1": "203.0.113.23"}


def add(
    mesh: Mesh,
    name: str,
    seed: int,
    priority: int = 0,
    lan: str | None = None,
    router: str | None = None,
) -> Node:
    """A node; with ``lan`` (such as "192.168.1") dial-out-only, advertising a LAN address,
    seen by the director at that home's router (one public address per LAN)."""
    node = mesh.add(name, seed, priority)
    if lan is not None:
        lan_address = f"wss://{lan}.{seed}:8701"
        node.membership.me = attrs.evolve(node.me, public_address=lan_address)
        seen = router or ROUTERS[lan]
        mesh.route(node, node.reachability(False, seen, mesh.now))
    return node


def ids(*nodes: Node) -> set[str]:
    return {n.node_id for n in nodes}


def test_reachable_ranks_above_dial_out_only_whatever_the_priority() -> None:
    mesh = Mesh()
    public = add(mesh, "pub", 7)
    home = add(mesh, "home", 11, priority=9, lan="192.168.1")
    assert not home.me.reachable and public.me.reachable
    mesh.start(public)
    mesh.join(home, public)
    for node in (public, home):
        rank = node.membership.rank
        assert rank(public.node_id) > rank(home.node_id)
    run(mesh, 0.5)
    assert public.role is Role.COORDINATOR and home.role is Role.MEMBER
    assert not home.election.terms.outranks(public.node_id)
    record = public.membership.members[home.node_id]
    assert record.reachable is False  # from its hello, into the member record
    assert home.snapshot().reachable is False


def test_the_dialable_end_is_dialed_and_two_homes_never_dial_each_other() -> None:
    mesh = Mesh()
    pub, pub2 = add(mesh, "pub", 7), add(mesh, "pub2", 23)
    a1, a2 = add(mesh, "a1", 11, lan="192.168.1"), add(mesh, "a2", 12, lan="192.168.1")
    b1 = add(mesh, "b1", 13, lan="192.168.2")
    natted(mesh, {a1.node_id: "a", a2.node_id: "a", b1.node_id: "b"})
    mesh.start(pub)
    for node in (pub2, a1, a2, b1):
        mesh.join(node, pub)
    run(mesh, 0.5)
    wanted = {n.node_id: set(mesh.wanted[n.node_id]) for n in (pub, pub2, a1, a2, b1)}
    # Nobody dials a dial-out-only node but its own home; every home node dials the public.
    for dialer, asked in wanted.items():
        assert b1.node_id not in asked
        if dialer not in ids(a1, a2):
            assert not asked & ids(a1, a2), dialer
    assert ids(pub, pub2) <= wanted[b1.node_id]
    assert ids(pub, pub2) <= wanted[a1.node_id]
    low, high = sorted((a1, a2), key=lambda n: n.node_id)
    assert high.node_id in wanted[low.node_id]  # one home: the lower dials over the LAN
    assert low.node_id not in wanted[high.node_id]
    assert wanted[pub.node_id] == set()  # the coordinator dials nobody
    # Every message reaches every member, home to home through the public nodes.
    sent = mesh.send(b1, "from home b")
    sent2 = mesh.send(a2, "from home a")
    for node in (pub, pub2, a1, a2, b1):
        assert {sent, sent2} <= set(mesh.delivered[node.node_id]), node.me.name


def test_a_dial_out_only_starter_hands_over_to_the_first_reachable_member() -> None:
    mesh = Mesh()
    home = add(mesh, "home", 23, priority=5, lan="192.168.1")  # the highest node-id, too
    public = add(mesh, "pub", 7)
    mesh.start(home)
    sent = mesh.send(home, "alone at home")
    mesh.join(public, home)  # from its own LAN, say; it outranks the starter
    run(mesh, 1.0)
    assert public.role is Role.COORDINATOR
    assert home.role is Role.MEMBER and home.standing.coordinator == public.node_id
    assert sent in mesh.delivered[public.node_id]


def test_the_public_coordinator_lost_the_other_public_node_takes_over() -> None:
    mesh = Mesh()
    pub1, pub2 = add(mesh, "pub1", 7, priority=2), add(mesh, "pub2", 11)
    a1, b1 = add(mesh, "a1", 23, priority=1, lan="192.168.1"), add(mesh, "b1", 13, 1, "10.1.1")
    natted(mesh, {a1.node_id: "a", b1.node_id: "b"})
    mesh.start(pub1)
    for node in (pub2, a1, b1):
        mesh.join(node, pub1)
    run(mesh, 0.3)
    crash(mesh, pub1)
    run(mesh, 2.0)
    for node in (pub2, a1, b1):
        assert node.standing.coordinator == pub2.node_id, node.me.name
        assert set(node.membership.members) == ids(pub2, a1, b1)
    sent = mesh.send(a1, "across")
    assert sent in mesh.delivered[b1.node_id]


def test_a_discussion_of_dial_out_only_members_says_so_once() -> None:
    mesh = Mesh()
    home = add(mesh, "home", 7, lan="192.168.1")
    mesh.start(home)
    run(mesh, 0.5)
    assert home.snapshot().reachable_members == 0
    assert len(mesh.logged(home, "discussion.unreachable")) == 1
    public = add(mesh, "pub", 23)
    mesh.join(public, home)
    run(mesh, 0.5)
    assert public.snapshot().reachable_members == 1
    assert mesh.logged(home, "discussion.reachable")


def test_every_node_reachable_keeps_the_overlay_as_it_was() -> None:
    members = [f"{i:02x}" * 16 for i in range(12)]
    assert assign(members, 6, ()) == assign(members, 6)


def test_dial_out_only_members_get_reachable_neighbours_only_but_their_home() -> None:
    for count in (3, 6, 12, 40):
        members = [f"{i:02x}" * 16 for i in range(count)]
        hidden = set(members[1::2])
        homes = {m: "lan-1" for m in members[1:8:2]}  # four of them share a home
        overlay = assign(members, 6, hidden, homes)
        assert connected(overlay)
        for node, peers in overlay.items():
            for peer in peers:
                assert node in overlay[peer], "links are symmetric"
                if node in hidden and peer in hidden:
                    assert homes.get(node) == homes.get(peer) is not None
        for node in hidden:
            reachable_peers = [p for p in overlay[node] if p not in hidden]
            assert len(reachable_peers) >= min(2, len(members) - len(hidden))
        if count > 6:
            for node in set(members) - hidden:
                assert connected(overlay, without=node), f"{count}: {node} cuts the overlay"


def test_a_home_is_the_address_a_dial_out_only_member_is_seen_from() -> None:
    mesh = Mesh()
    home = add(mesh, "home", 7, lan="192.168.1")
    other = add(mesh, "other", 9, lan="192.168.1", router="198.51.100.7")  # another home
    public = add(mesh, "pub", 11)
    assert home_of(home.me) == ROUTERS["192.168.1"]
    assert home_of(other.me) == "198.51.100.7" != home_of(home.me)
    assert home_of(public.me) is None
    unknown = attrs.evolve(home.me, observed_address="")  # a director that predates it
    assert home_of(unknown) is None
