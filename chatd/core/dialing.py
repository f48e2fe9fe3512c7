"""Which links this node opens itself, and the ``Dial``/``Undial`` effects that say so.

Members dial the coordinator (its member record's address, else what a claim or the
director said); between two members of the overlay, the one peers can dial is dialed: a
dial-out-only member (behind NAT) dials a reachable one and is never dialed; when both are
reachable the lower node-id dials, so each link is opened from one end only; when neither
is, nobody tries, unless they share a home (one NAT, ``Membership.same_home``: then the
lower dials). A candidate dials the higher members it must ask, overlay or not, if it
can. The coordinator dials nobody: its members dial it. A leaving node dials nobody.
"""

from __future__ import annotations

from chatd.core.effects import Dial, Effect, Role, Undial
from chatd.core.membership import Membership
from chatd.core.standing import Standing


def dials(standing: Standing, membership: Membership, voting: bool) -> dict[str, str]:
    """Peer -> public address, for every link this node must dial itself."""
    if standing.role in (Role.LEAVING, Role.COORDINATOR):
        return {}
    me, members = membership.node_id, membership.members
    neighbours = membership.neighbours()
    out: dict[str, str] = {}
    coordinator = standing.coordinator
    address = membership.coordinator_address()
    if coordinator is not None and coordinator != me and address is not None:
        out[coordinator] = address
    wanted = set(neighbours) | (membership.higher() if voting else set())
    for peer in wanted - {coordinator}:
        if peer in members and _opens(membership, peer, peer in neighbours):
            out[peer] = members[peer].public_address
    return out


def _opens(membership: Membership, peer: str, neighbour: bool) -> bool:
    """Whether this node opens the link to ``peer`` (a neighbour, or a higher member a
    candidate must ask), rather than ``peer`` opening it or nobody."""
    if membership.reachable(peer):
        # Both reachable: the lower dials the overlay's links; a candidate dials its own.
        return (
            not membership.reachable(membership.node_id)
            or membership.node_id < peer
            or not neighbour
        )
    if membership.reachable(membership.node_id):
        return False  # it dials us
    return membership.node_id < peer and membership.same_home(peer)


class Dialing:
    """What the shell was asked to dial; after each event, the difference as effects."""

    def __init__(self) -> None:
        self.asked: dict[str, str] = {}

    def update(self, wanted: dict[str, str]) -> list[Effect]:
        effects: list[Effect] = []
        for peer in sorted(self.asked.keys() - wanted.keys()):
            del self.asked[peer]
            effects.append(Undial(peer))
        for peer, address in sorted(wanted.items()):
            if self.asked.get(peer) != address:
                self.asked[peer] = address
                effects.append(Dial(peer, address))
        return effects
