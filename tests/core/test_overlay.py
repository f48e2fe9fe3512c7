"""Overlay assignment: symmetric, loop-free, connected even without any one member, and
logarithmic in degree; a join moves a few links."""

from __future__ import annotations

import hashlib
import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.core.overlay import assign

Overlay = dict[str, list[str]]


def connected(overlay: Overlay, without: str | None = None) -> bool:
    nodes = [n for n in overlay if n != without]
    if not nodes:
        return True
    seen = {nodes[0]}
    stack = [nodes[0]]
    while stack:
        for peer in overlay[stack.pop()]:
            if peer != without and peer not in seen:
                seen.add(peer)
                stack.append(peer)
    return len(seen) == len(nodes)


def check(members: list[str], full_mesh_max: int) -> None:
    overlay = assign(members, full_mesh_max)
    ids = set(members)
    n = len(ids)
    assert set(overlay) == ids
    for node, peers in overlay.items():
        assert node not in peers, f"{node} is linked to itself"
        assert len(set(peers)) == len(peers)
        assert set(peers) <= ids
        for peer in peers:
            assert node in overlay[peer], f"{node} → {peer} is not symmetric"
    if n <= full_mesh_max:
        assert all(set(peers) == ids - {node} for node, peers in overlay.items())
    if n >= 3:
        assert all(len(peers) >= 2 for peers in overlay.values())
    if n >= 2:
        assert all(len(peers) >= 1 for peers in overlay.values())
        assert max(len(p) for p in overlay.values()) <= 2.5 * math.log2(n) + 2 or n <= full_mesh_max
    assert connected(overlay)
    for gone in ids:
        assert connected(overlay, without=gone), f"removing {gone} partitions {n} members"


@pytest.mark.parametrize("n", range(41))
def test_every_size_up_to_40(n: int) -> None:
    check([f"node-{i:02d}" for i in range(n)], full_mesh_max=6)


@pytest.mark.parametrize("n", [1, 2, 5, 6])
def test_full_mesh_up_to_the_limit(n: int) -> None:
    members = [f"m{i}" for i in range(n)]
    assert sum(len(p) for p in assign(members, 6).values()) == n * (n - 1)


def test_beyond_the_limit_is_a_sparse_ring_with_chords() -> None:
    members = [f"m{i:02d}" for i in range(40)]
    overlay = assign(members, 6)
    assert max(len(p) for p in overlay.values()) <= 2.5 * math.log2(40) + 2
    ring = members[1:] + members[:1]
    assert all(nxt in overlay[node] for node, nxt in zip(members, ring, strict=True))
    assert any(len(p) < 7 for p in assign(members[:8], 6).values())


def test_assignment_depends_only_on_the_set() -> None:
    members = [f"m{i:02d}" for i in range(20)]
    assert assign(members) == assign(list(reversed(members))) == assign(members + members[:3])


@given(
    st.lists(st.text("abcxyz019-é", min_size=1, max_size=6), max_size=40),
    st.integers(0, 10),
)
def test_random_member_sets(members: list[str], full_mesh_max: int) -> None:
    check(members, full_mesh_max)


def edges(overlay: Overlay) -> set[frozenset[str]]:
    return {frozenset((node, peer)) for node, peers in overlay.items() for peer in peers}


def test_a_join_moves_a_few_links_not_half_of_them() -> None:
    """Every link a join opens or closes is a TLS handshake or a goodbye somewhere: in a
    group of 100 a join must not move chords all over the group."""
    ids = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(140)]
    moved = []
    for n in range(100, 140):
        before, after = edges(assign(ids[:n])), edges(assign(ids[: n + 1]))
        moved.append(len(before ^ after))
        assert len(after) < 8 * (n + 1)  # and it stays sparse
    # Chords counted in places along the sorted ring moved over 250 links per join here.
    assert statistics.mean(moved) < 6 * math.log2(100)
    assert max(moved) < 12 * math.log2(100)
