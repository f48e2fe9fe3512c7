"""Overlay assignment: who relays to whom.

Up to ``full_mesh_max`` members form a full mesh. Beyond that, members sorted by node-id
form a ring, and each is also linked to the members 2, 4, 8, … places along it. The ring
alone gives every member two neighbours and survives the loss of any one member (a ring
minus one node is a path); the chords keep the diameter near log2(n).

Dial-out-only members (behind NAT, issue 13) cannot be dialed, so two of them can never
link: the reachable members form the overlay above among themselves, and each dial-out-
only member is attached to reachable ones only (all of them when the whole discussion is
a full mesh, else two, spread along the ring), so messages between two homes travel
through reachable members. Dial-out-only members that share a ``home`` (one NAT: the
director saw them come from one address) are also linked to each other. With no
reachable member at all, the overlay is the one above over everyone (who can link,
``chatd.core.dialing`` decides).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

ATTACHMENTS = 2  # reachable neighbours of a dial-out-only member beyond a full mesh


def assign(
    members: Iterable[str],
    full_mesh_max: int = 6,
    dial_out_only: Collection[str] = (),
    homes: Mapping[str, str] = {},
) -> dict[str, list[str]]:
    ids = sorted(set(members))
    hidden = [node for node in ids if node in dial_out_only]
    reachable = [node for node in ids if node not in dial_out_only]
    if not hidden or not reachable:
        return _ring(ids, full_mesh_max)
    links = {node: set(peers) for node, peers in _ring(reachable, full_mesh_max).items()}
    links.update({node: set() for node in hidden})
    count = len(reachable) if len(ids) <= full_mesh_max else min(ATTACHMENTS, len(reachable))
    for i, node in enumerate(hidden):
        for k in range(count):
            other = reachable[(i + k) % len(reachable)]
            links[node].add(other)
            links[other].add(node)
    for node in hidden:
        home = homes.get(node)
        if home is None:
            continue
        for other in hidden:
            if other != node and homes.get(other) == home:
                links[node].add(other)
    return {node: sorted(peers) for node, peers in links.items()}


def _ring(ids: list[str], full_mesh_max: int) -> dict[str, list[str]]:
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
