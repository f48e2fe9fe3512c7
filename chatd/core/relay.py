"""Who forwards a message to whom: a spanning tree of the overlay per origin.

Every member holds the same overlay (the coordinator's ``nodes``), so every member can
compute the same breadth-first tree of it rooted at a message's origin (neighbours taken
in node-id order). A node forwards a message it takes for the first time to its children
in its origin's tree, whoever handed it over: in steady state each member receives each
message exactly once, along a shortest path from the origin (Plumtree's eager push,
Leitao et al. 2007, with the tree derived rather than negotiated). The heartbeat digests
are the lazy half: a member that misses a message (a link down, views that differ during
a change) asks a peer that has it (``chatd.core.replica``).

A child this node has no link to is skipped over: its own children get the message from
here, so one missing link or dead member does not cut off its subtree. Trees are cached
per overlay: a message costs one dictionary lookup here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Mapping, Sequence

Overlay = Mapping[str, Sequence[str]]


def tree(overlay: Overlay, root: str) -> dict[str, list[str]]:
    """The breadth-first spanning tree of ``overlay`` from ``root``: node -> children."""
    children: dict[str, list[str]] = {root: []}
    queue = deque([root])
    while queue:
        node = queue.popleft()
        for peer in sorted(overlay.get(node, ())):
            if peer not in children:
                children[peer] = []
                children[node].append(peer)
                queue.append(peer)
    return children


class Relay:
    def __init__(self) -> None:
        self._overlay: Overlay | None = None
        self._trees: dict[str, dict[str, list[str]]] = {}

    def targets(self, me: str, origin: str, overlay: Overlay, linked: Container[str]) -> list[str]:
        """The peers this node forwards ``origin``'s message to, or [] for none; raises
        ``KeyError`` if ``me`` or ``origin`` is not in the overlay (no tree to follow)."""
        if overlay is not self._overlay:
            self._overlay, self._trees = overlay, {}
        children = self._trees.get(origin)
        if children is None:
            if origin not in overlay:
                raise KeyError(origin)
            children = self._trees[origin] = tree(overlay, origin)
        out: list[str] = []
        pending = deque(children[me])
        while pending:
            child = pending.popleft()
            if child in linked:
                out.append(child)
            else:
                pending.extend(children[child])
        return out
