"""Overlay assignment: who links to whom (messages follow its trees, ``chatd.core.relay``).

Up to ``full_mesh_max`` members form a full mesh. Beyond that, members sorted by node-id
form a ring, and each also has chords, as Chord's fingers (Stoica et al. 2001): placed on
a circle by a hash of its node-id, a member links to the first member at or after each
point 1, 2, 4, ... 2^63 along it. The ring alone gives every member two neighbours and
survives the loss of any one member (a ring minus one node is a path); the chords keep the
diameter near log2(n). A chord to a member that has ``2.5 log2(n) + 2`` links already goes
to the next member along the circle instead, so no member becomes a hub. A member joining
or leaving moves a few links (about 30 on average in a group of 100), where chords counted
in places along the sorted ring moved about 300: every join opened and closed links all
over the group.

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

import bisect
import hashlib
import math
from collections.abc import Collection, Iterable, Mapping

ATTACHMENTS = 2  # reachable neighbours of a dial-out-only member beyond a full mesh
CIRCLE_BITS = 64  # the chords' circle: points 0 .. 2^64 - 1


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
        return {node: sorted(peers) for node, peers in links.items()}
    for i, node in enumerate(ids):
        _link(links, node, ids[(i + 1) % n])
    cap = int(2.5 * math.log2(n)) + 2
    circle = sorted(ids, key=_point)
    points = [_point(node) for node in circle]
    for node in circle:
        for k in range(CIRCLE_BITS):
            if len(links[node]) >= cap:
                break
            at = bisect.bisect_left(points, (_point(node) + (1 << k)) % (1 << CIRCLE_BITS))
            for step in range(n):  # the first member from there that has room
                other = circle[(at + step) % n]
                if other == node or other in links[node]:
                    break
                if len(links[other]) < cap:
                    _link(links, node, other)
                    break
    return {node: sorted(peers) for node, peers in links.items()}


def _link(links: dict[str, set[str]], a: str, b: str) -> None:
    if a != b:
        links[a].add(b)
        links[b].add(a)


def _point(node: str) -> int:
    """Where a member sits on the chords' circle: spread evenly whatever its node-id."""
    digest = hashlib.blake2b(node.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")
