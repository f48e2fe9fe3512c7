"""Which links this node opens itself, and the ``Dial``/``Undial`` effects that say so.

Members dial the coordinator (its member record's address, else what a claim or the
director said); between two members of the overlay, the one peers can dial is dialed: a
dial-out-only member (behind NAT) dials a reachable one and is never dialed; when both are
reachable the lower node-id dials, so each link is opened from one end only; when neither
is, nobody tries, unless they share a home (one NAT, ``Membership.same_home``: then the
lower dials). A candidate dials the higher members it must ask, overlay or not, if it
can. The coordinator dials nobody: its members dial it. A leaving node dials nobody.

The end that opened a link closes it (``Disconnect``) once it no longer needs it (not the
coordinator, not an overlay neighbour, not a higher member to ask; for the coordinator,
not a member) and the link has been unneeded and quiet for ``link_linger``: links opened
while joining, during an election or before a membership change do not pile up, and a
link is not flapped while views of the membership differ.
"""

from __future__ import annotations

from collections.abc import Callable

from chatd.core.effects import Dial, Disconnect, Effect, Role, Undial
from chatd.core.membership import Membership
from chatd.core.recorder import Recorder
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


def dial_inputs(standing: Standing, membership: Membership, voting: bool) -> tuple[object, ...]:
    """What ``dials`` (and a count of reachable members) depend on, to compare by identity:
    the membership's dicts are replaced (``nodes``), or its overlay reassigned after every
    change in place (``Membership.changed``)."""
    return (
        standing.role,
        standing.coordinator,
        standing.coordinator_address,
        voting,
        membership.me,
        membership.members,
        membership.overlay,
    )


def needed(standing: Standing, membership: Membership, wanted: dict[str, str]) -> set[str]:
    """The peers this node needs a link to: what it dials, its neighbours, its coordinator,
    and, as coordinator, every member."""
    keep = set(wanted) | set(membership.neighbours())
    if standing.coordinator is not None:
        keep.add(standing.coordinator)
    if standing.role is Role.COORDINATOR:
        keep.update(membership.members)
    return keep


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
    """What the shell was asked to dial; after each event, the difference as effects. The
    links this node opened, and when each stopped being needed."""

    def __init__(self, log: Recorder) -> None:
        self.log = log
        self.asked: dict[str, str] = {}
        self.opened: set[str] = set()  # peers whose link is up because we asked for it
        self._unneeded: dict[str, float] = {}  # opened peer -> unneeded since

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

    def connected(self, peer: str) -> None:
        """A link came up: ours if we were dialing that peer."""
        if peer in self.asked:
            self.opened.add(peer)
        else:
            self.opened.discard(peer)
        self._unneeded.pop(peer, None)

    def disconnected(self, peer: str) -> None:
        self.opened.discard(peer)
        self._unneeded.pop(peer, None)

    def prune(
        self, keep: set[str], now: float, linger: float, idle: Callable[[str], bool]
    ) -> list[Effect]:
        """Close the links we opened that were not needed, and idle, for ``linger``."""
        for peer in [p for p in self._unneeded if p in keep]:
            del self._unneeded[peer]
        effects: list[Effect] = []
        for peer in sorted(self.opened - keep):
            since = self._unneeded.setdefault(peer, now)
            if now - since >= linger and idle(peer):
                self.opened.discard(peer)
                del self._unneeded[peer]
                self.log.info("link.unneeded", peer=peer)
                effects.append(Disconnect(peer, "link no longer needed"))
        return effects
