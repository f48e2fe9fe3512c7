"""Chat messages: checking, relaying, delivering; anti-entropy and state transfer."""

from __future__ import annotations

from chatd import identity
from chatd.core.effects import Deliver, Effect, Role, Send
from chatd.core.state import NodeState
from chatd.wire import Discussion, DiscussionRequest, Heartbeat, Message

MAX_ID_CHARS = 64
MAX_NAME_CHARS = 64


def chunk_messages(messages: list[Message], budget: int) -> list[list[Message]]:
    """Split for state transfer so each ``discussion`` frame stays under ``budget`` bytes.

    The size is a safe over-estimate (JSON may escape a byte as six), so no encoding here.
    """
    chunks: list[list[Message]] = []
    current: list[Message] = []
    used = 0
    for message in messages:
        size = 600 + 6 * len(message.message) + 80 * len(message.vector_clock)
        if current and used + size > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(message)
        used += size
    if current:
        chunks.append(current)
    return chunks


class Messaging(NodeState):
    def _on_message(self, peer: str, message: Message) -> list[Effect]:
        if message.id in self.buffer:
            self.counters["messages.duplicate"] += 1
            return []
        problem = self._check_message(message, peer)
        if problem is not None:
            self.log.warning(
                "message.refused", peer=peer, id=message.id[:MAX_ID_CHARS], reason=problem
            )
            return []
        return self._accept(message, source=peer)

    def _check_message(self, message: Message, peer: str) -> str | None:
        if len(message.id) > MAX_ID_CHARS or len(message.name) > MAX_NAME_CHARS:
            return "id or name too long"
        if len(message.message.encode("utf-8", "surrogatepass")) > self.config.max_text_bytes:
            return "text over the size limit"
        if len(message.timestamp) > 40:
            return "timestamp too long"
        clock = message.vector_clock
        if clock.get(message.node_id, 0) < 1 or any(c < 0 for c in clock.values()):
            return "vector clock does not count the origin or has a negative entry"
        # Straight from its origin, the authenticated link proves who sent it; a relay (or
        # a state transfer) must carry the origin's signature. Verifying costs ~100 µs.
        if peer != message.node_id and not identity.verify(message):
            return "signature does not match node-id"
        if message.id != identity.message_id(message.node_id, clock[message.node_id]):
            return "id is not derived from its origin and sequence number"
        if self.buffer.is_stale(message):
            return "sequence number already used by its origin"
        return None

    def _accept(self, message: Message, source: str | None) -> list[Effect]:
        """Take a new, checked message: relay it once, deliver what became deliverable."""
        effects: list[Effect] = []
        targets = self._relay_targets() - self._already_sent_by(source) - {message.node_id}
        effects.extend(Send(peer, message) for peer in sorted(targets))
        self.counters["messages.relayed"] += len(effects)
        for delivered in self.buffer.offer(message):
            self.history.add(delivered)
            effects.append(Deliver(delivered))
        self.counters["messages.delivered"] = len(self.history)
        self.counters["messages.held"] = self.buffer.held
        return effects

    def _already_sent_by(self, source: str | None) -> set[str]:
        """Peers that ``source`` relayed the message to itself, by the same rule as ours:
        its overlay neighbours and the coordinator. In a full mesh a message that came
        straight from its origin is relayed no further. Whoever still misses it (a link
        down, views that differ during a change) gets it from anti-entropy."""
        if source is None:
            return set()
        sent = {source, *self.overlay.get(source, ())}
        if self.coordinator is not None:
            sent.add(self.coordinator)
        return sent

    def _relay_targets(self) -> set[str]:
        targets = set(self.neighbours())
        if self.coordinator is not None and self.role is not Role.COORDINATOR:
            targets.add(self.coordinator)
        if not targets:  # not placed in the overlay yet: whoever we are linked to
            targets = set(self.peers)
        return targets & set(self.peers)

    def _on_heartbeat(self, peer: str, beat: Heartbeat, now: float) -> list[Effect]:
        if beat.node_id != peer:
            return self._refuse(peer, beat, "node-id is not the sender")
        effects: list[Effect] = []
        if beat.term < self.term:
            effects.extend(self._fence(peer, now))
        return effects + self._compare_digest(peer, beat, now)

    def _compare_digest(self, peer: str, beat: Heartbeat, now: float) -> list[Effect]:
        if self.role is Role.JOINING and not self.has_joined:
            return []  # the join brings the whole history; asking too would fetch it twice
        mine = self.buffer.delivered
        behind = any(count > mine.get(node, 0) for node, count in beat.digest.items())
        if not behind:
            return []
        last = self._last_request.get(peer)
        if last is not None and now - last < self.config.repair_interval:
            return []  # an answer may still be on its way
        self._last_request[peer] = now
        self.log.info("repair.requested", peer=peer)
        return [Send(peer, DiscussionRequest(self.delivered_clock()))]

    def _send_discussion(self, peer: str, clock: dict[str, int]) -> list[Effect]:
        missing = self.history.since(clock)
        if missing:
            self.log.info("repair.sent", peer=peer, messages=len(missing))
        return [
            Send(peer, Discussion(chunk))
            for chunk in chunk_messages(missing, self.config.discussion_chunk_bytes)
        ]

    def _on_discussion(self, peer: str, frame: Discussion) -> list[Effect]:
        effects: list[Effect] = []
        for message in frame.messages:
            effects.extend(self._on_message(peer, message))
        return effects
