"""The node's authenticated links, and what it does about peers that misbehave.

- Frames whose ``node-id`` is not the authenticated peer that sent them are refused.
  Refusals are logged once, then summed (``chatd.core.abuse``); frames no honest node sends
  are strikes, and too many close the link.
- A peer proven hostile (an invalid message, an equivocation) is banned: its link is
  closed and it may not link or join again.
"""

from __future__ import annotations

from chat.wire import Hello
from chatd.config import Config
from chatd.core.abuse import Refusals
from chatd.core.effects import Disconnect, Effect
from chatd.core.recorder import Recorder


class Links:
    def __init__(self, config: Config, log: Recorder) -> None:
        self.log = log
        self.peers: dict[str, Hello] = {}  # authenticated, connected peers
        self.banned: set[str] = set()
        self.refusals = Refusals(
            config.strike_limit, config.refusal_window, config.refusal_log_interval
        )

    def connected(self, hello: Hello) -> list[Effect]:
        """A peer finished the handshake: take its link, unless it is banned."""
        peer = hello.node_id
        if peer in self.banned:
            self.log.info("peer.refused", peer=peer, reason="banned")
            return [Disconnect(peer, "banned from this discussion")]
        self.peers[peer] = hello
        self.log.info("peer.connected", peer=peer, peer_name=hello.name)
        return []

    def disconnected(self, peer: str) -> None:
        if self.peers.pop(peer, None) is not None:
            self.log.info("peer.disconnected", peer=peer)

    def note(
        self, event: str, peer: str, kind: str, reason: str, now: float, **extra: object
    ) -> None:
        """Log a refusal once per interval; repeats are summed (``chatd.core.abuse``)."""
        self.refusals.note(self.log, event, peer, kind, reason, now, **extra)

    def refuse(
        self, peer: str, kind: str, reason: str, now: float, *, hard: bool = True
    ) -> list[Effect]:
        """Log (or count) a refused frame of type ``kind``. A hard refusal is a strike
        against the peer; too many and its link is closed."""
        self.note("frame.refused", peer, kind, reason, now)
        self.log.counters["frames.refused"] += 1
        if hard and self.refusals.strike(peer, now):
            self.log.warning("peer.expelled", peer=peer, reason="too many refused frames")
            return [Disconnect(peer, "too many refused frames")]
        return []

    def ban(self, peer: str, reason: str) -> list[Effect]:
        """A peer proved hostile: close its link; it may not link or join again."""
        if peer not in self.banned:
            self.banned.add(peer)
            self.log.warning("peer.banned", peer=peer, reason=reason)
        return [Disconnect(peer, reason)] if peer in self.peers else []

    def flush(self, now: float) -> None:
        """Once per interval, the summary lines of repeated refusals."""
        self.refusals.flush(self.log, now)
