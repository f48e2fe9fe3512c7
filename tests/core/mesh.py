"""Sans-I/O ``Node`` objects wired together by hand, for the node tests.

``Mesh`` plays the shell: it carries out effects at once and in order (``Send`` goes through
the real wire codec into the addressed node's ``frame_received``), dials what ``Dial`` asks
for until ``Undial``, and records deliveries, log lines, director calls and every frame
that crossed a link.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from chat.identity import Identity
from chat.wire import (
    PROTOCOL_VERSION,
    Frame,
    Hello,
    MemberRecord,
    decode_frame,
    encode_frame,
)
from chatd.config import TEST
from chatd.core.node import (
    Announce,
    Deliver,
    Dial,
    Disconnect,
    Effect,
    Log,
    Node,
    RegisterCoordinator,
    Send,
    Undial,
    UnregisterCoordinator,
)
from chatd.core.presence import Presence

Drop = Callable[[str, str, Frame], bool]


class Mesh:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.identities: dict[str, Identity] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.wanted: dict[str, dict[str, str]] = {}  # node-id -> what it asked to dial
        self.links: set[frozenset[str]] = set()
        self.delivered: dict[str, list[str]] = {}
        self.presence: dict[str, list[Presence]] = {}  # node-id -> its announcements
        self.director: list[tuple[str, Effect]] = []
        self.frames: list[tuple[str, str, Frame]] = []  # (from, to, frame), as carried
        self.drop: Drop = lambda src, dst, frame: False
        # Whether a dial from one node to another connects (NAT: not to a dial-out-only one).
        self.dialable: Callable[[Node, Node], bool] = lambda src, dst: True
        self.now = 0.0

    # Building ----------------------------------------------------------------------------

    def add(self, name: str, seed: int, priority: int = 0) -> Node:
        ident = Identity.generate(seed=bytes([seed]) * 32)
        me = MemberRecord(
            node_id=ident.node_id,
            name=name,
            address=f"ws://10.0.0.{seed}:9000",
            public_address=f"ws://{name}.example:9000",
            priority=priority,
        )
        node = Node(me, ident, TEST)
        self.nodes[node.node_id] = node
        self.identities[node.node_id] = ident
        self.events[node.node_id] = []
        self.wanted[node.node_id] = {}
        self.delivered[node.node_id] = []
        self.presence[node.node_id] = []
        return node

    def hello(self, node: Node) -> Hello:
        return Hello(
            protocol_version=PROTOCOL_VERSION,
            node_id=node.node_id,
            name=node.me.name,
            address=node.me.address,
            public_address=node.me.public_address,
            priority=node.me.priority,
            term=node.term,
            nonce=f"nonce-{node.me.name}",
            public_key=self.identities[node.node_id].public_key,
            secure=True,
            reachable=node.me.reachable,
            observed_address=node.me.observed_address,
        )

    def start(self, node: Node, term: int = 1) -> None:
        self.route(node, node.start_discussion(term, self.now))

    def join(self, node: Node, coordinator: Node) -> None:
        """The director pointed ``node`` at ``coordinator``: dial and settle."""
        self.route(node, node.join(coordinator.election.record(), self.now))
        self.settle()

    def connect(self, a: Node, b: Node) -> None:
        self.links.add(frozenset((a.node_id, b.node_id)))
        first = a.peer_connected(self.hello(b), self.now)
        second = b.peer_connected(self.hello(a), self.now)
        self.route(a, first)
        self.route(b, second)

    def leave(self, node: Node) -> list[Effect]:
        """Leave gracefully: carry out the node's effects, then close its links."""
        effects = node.leave(self.now)
        self.route(node, effects)
        for link in [link for link in self.links if node.node_id in link]:
            (other,) = link - {node.node_id}
            self.disconnect(node.node_id, other)
        del self.nodes[node.node_id]
        return effects

    def disconnect(self, a: str, b: str) -> None:
        if frozenset((a, b)) not in self.links:
            return
        self.links.discard(frozenset((a, b)))
        for here, there in ((a, b), (b, a)):
            if here in self.nodes:
                self.route(self.nodes[here], self.nodes[here].peer_disconnected(there, self.now))

    # Running -----------------------------------------------------------------------------

    def plain(self, node: Node, effects: list[Effect]) -> list[Effect]:
        """Record ``node``'s log lines and dial requests; the rest of its effects."""
        rest: list[Effect] = []
        for effect in effects:
            match effect:
                case Log(level=level, event=event, fields=fields):
                    self.events[node.node_id].append({"event": event, "level": level, **fields})
                case Dial(peer=peer, address=address):
                    self.wanted[node.node_id][peer] = address
                case Undial(peer=peer):
                    self.wanted[node.node_id].pop(peer, None)
                case _:
                    rest.append(effect)
        return rest

    def route(self, source: Node, effects: list[Effect]) -> None:
        """Carry out effects, and every effect they cause, until nothing is left."""
        queue: deque[tuple[str, Effect]] = deque((source.node_id, e) for e in effects)
        while queue:
            src, effect = queue.popleft()
            match effect:
                case Send(peer=peer, frame=frame):
                    if frozenset((src, peer)) not in self.links or self.drop(src, peer, frame):
                        continue
                    carried = decode_frame(encode_frame(frame))
                    assert carried == frame, f"{frame.TYPE} does not survive the wire"
                    self.frames.append((src, peer, carried))
                    caused = self.nodes[peer].frame_received(src, carried, self.now)
                    queue.extend((peer, e) for e in caused)
                case Deliver(message=message):
                    self.delivered[src].append(message.id)
                case Announce(presence=presence):
                    self.presence[src].append(presence)
                case Disconnect(peer=peer):
                    self.disconnect(src, peer)
                case RegisterCoordinator() | UnregisterCoordinator():
                    self.director.append((src, effect))
                case Log() | Dial() | Undial():
                    if src in self.nodes:
                        self.plain(self.nodes[src], [effect])

    def settle(self) -> None:
        """Dial every link the nodes ask for, until none is missing."""
        while True:
            wanted = [
                (node, self.nodes[peer])
                for node in list(self.nodes.values())
                for peer in self.wanted[node.node_id]
                if peer in self.nodes
                and frozenset((node.node_id, peer)) not in self.links
                and self.dialable(node, self.nodes[peer])
            ]
            if not wanted:
                return
            node, peer = wanted[0]
            self.connect(node, peer)

    def tick(self, seconds: float) -> None:
        self.now += seconds
        for node in list(self.nodes.values()):
            self.route(node, node.tick(self.now))

    def send(self, node: Node, text: str) -> str:
        message, effects = node.send_text(text, "2024-01-01T00:00:00Z", self.now)
        self.route(node, effects)
        return message.id

    # Looking -----------------------------------------------------------------------------

    def logged(self, node: Node, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events[node.node_id] if e["event"] == event]

    def sent(self, src: Node, dst: Node, kind: type) -> list[Frame]:
        return [
            f
            for s, d, f in self.frames
            if s == src.node_id and d == dst.node_id and isinstance(f, kind)
        ]
