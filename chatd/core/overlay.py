"""Overlay assignment: who relays to whom.

Up to ``full_mesh_max`` members form a full mesh. Beyond that, members sorted by node-id
form a ring, and each is also linked to the members 2, 4, 8, … places along it. The ring
alone gives every member two neighbours and survives the loss of any one member (a ring
minus one node is a path); the chords keep the diameter near log2(n).
"""

from __future__ import annotations

from collections.abc import Iterable


def assign(members: Iterable[str], full_mesh_max: int = 6) -> dict[str, list[str]]:
    ids = sorted(set(members))
    n = len(ids)
    links: dict[str, set[str]] = {node: set() for node in ids}
    if n <= full_mesh_max:
        for node in ids:
            links[node] = set(ids) - {node}
    else:
        step = 1
        while step < n:
            for i, node in enumerate(ids):
                other = ids[(i + step) % n]
                if other != node:
                    links[node].add(other)
                    links[other].add(node)
            step *= 2
    return {node: sorted(peers) for node, peers in links.items()}
