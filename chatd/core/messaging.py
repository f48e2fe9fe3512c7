"""Chat messages: checking, relaying, delivering; anti-entropy and state transfer."""

from __future__ import annotations

import hashlib

from chat import identity
from chat.wire import Discussion, DiscussionRequest, Heartbeat, Message
from chat.wire.bounds import MAX_CLOCK_ENTRIES, MAX_MEMBERS
from chatd.core.abuse import TokenBucket
from chatd.core.delivery import winner
from chatd.core.effects import Deliver, Disconnect, Effect, Role, Send
from chatd.core.history import canonical_key
from chatd.core.state import NodeState

# Origins a node takes messages from that are not current members (members who left, or a
# member's keys minted to fill the clock): the rest of the clock's entries stay for members.
ORIGINS_OUTSIDE_MEMBERS = MAX_CLOCK_ENTRIES - MAX_MEMBERS


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
    """Message acceptance, the same rule at every honest node (README: Trust model):

    - **Valid** (checked whoever hands it over, so a direct receiver checks exactly what a
      relay receiver checks): text within the limit, a clock that counts its origin, an id
      derived from (origin, sequence number), its origin's signature. A peer that hands
      over an invalid message is hostile: it is banned and its link closed.
    - **Held within bounds** (state that differs between nodes, so a refusal here is
      soft: the message is dropped without blame and anti-entropy brings it later): at
      most ``held_window`` ahead of what is delivered from its origin, ``max_held_messages``
      held in all, at most ``clock_unknown_margin`` unknown origins in its clock, and at
      most twice the flood rate from an origin over its own link.
    - **One version per (origin, sequence number)**: a second validly signed version is an
      equivocation: the lower signature wins everywhere, both versions are sent to every
      peer (the proof), and the origin is banned.
    """

    def _on_message(
        self, peer: str, message: Message, now: float, live: bool = True
    ) -> list[Effect]:
        kept = self.buffer.signature_of(message.id)
        if kept == message.signature:
            self.counters["messages.duplicate"] += 1
            return []
        if live and peer == message.node_id and not self._flood_allows(peer, now):
            self.counters["messages.flood_dropped"] += 1
            self.refusals.note(
                self.log, "message.dropped", peer, message.TYPE, "over the flood limit", now
            )
            return []
        problem = self._check_message(message)
        if problem is not None:
            self.counters["messages.refused"] += 1
            self.refusals.note(
                self.log,
                "message.refused",
                peer,
                message.TYPE,
                problem,
                now,
                id=message.id,  # at most 64 characters: checked at decode
            )
            return self._ban(peer, f"sent an invalid message: {problem}")
        if kept is not None:
            return self._on_rival(peer, message, now)
        deferred = self._check_capacity(message)
        if deferred is not None:
            self.counters["messages.deferred"] += 1
            self.refusals.note(self.log, "message.deferred", peer, message.TYPE, deferred, now)
            return []
        return self._accept(message, source=peer)

    def _check_message(self, message: Message) -> str | None:
        """What is wrong with ``message`` whatever the receiver's state, or None."""
        if len(message.message.encode("utf-8", "surrogatepass")) > self.config.max_text_bytes:
            return "text over the size limit"
        seq = message.vector_clock.get(message.node_id, 0)
        if seq < 1:
            return "vector clock does not count the origin"
        if message.id != identity.message_id(message.node_id, seq):
            return "id is not derived from its origin and sequence number"
        if not identity.verify(message):
            return "signature does not match node-id"
        return None

    def _check_capacity(self, message: Message) -> str | None:
        """Why this node cannot hold ``message`` now (soft: it comes again later)."""
        origin = message.node_id
        delivered = self.buffer.delivered
        if message.vector_clock[origin] > delivered.get(origin, 0) + self.config.held_window:
            return "too far ahead of its origin's delivered messages"
        if self.buffer.held >= self.config.max_held_messages:
            return "too many messages held back"
        if origin not in delivered:
            # Every origin ever delivered stays in the vector clock: keep it within the
            # wire's bound, with room reserved for the members of the moment.
            if len(delivered) >= MAX_CLOCK_ENTRIES:
                return "too many origins"
            if origin not in self.members and len(delivered) >= ORIGINS_OUTSIDE_MEMBERS:
                return "too many origins that are not members"
        unknown = sum(
            1 for node in message.vector_clock if node not in delivered and node not in self.members
        )
        if unknown > self.config.clock_unknown_margin:
            return "clock names too many unknown origins"
        return None

    def _flood_allows(self, origin: str, now: float) -> bool:
        bucket = self._flood.get(origin)
        if bucket is None:
            bucket = self._flood[origin] = TokenBucket(
                2 * self.config.flood_rate, 2 * self.config.flood_burst
            )
        return bucket.allow(now)

    def _on_rival(self, peer: str, rival: Message, now: float) -> list[Effect]:
        """A second valid version of a message we hold: an equivocation by its origin."""
        origin, seq = rival.node_id, rival.vector_clock[rival.node_id]
        self.counters["messages.equivocations"] += 1
        held = self.buffer.held_version(rival.id)
        ours = held if held is not None else self.history.get(rival.id)
        assert ours is not None  # the buffer has seen this id: it is held or delivered
        effects: list[Effect] = []
        if (origin, seq) not in self._equivocations:
            self._equivocations.add((origin, seq))
            self.log.warning("message.equivocation", origin=origin, seq=seq, peer=peer)
            # The proof: both versions to every peer, so every honest node keeps the winner.
            proof = Discussion([ours, rival])
            effects.extend(Send(p, proof) for p in sorted(self.peers) if p != peer)
        effects.extend(self._ban(origin, "equivocated"))
        self._rivals[rival.id] = rival if winner(ours, rival) is ours else ours
        if held is not None:
            effects.extend(self._deliver_all(self.buffer.offer_rival(rival)))
        elif winner(ours, rival) is rival:
            self.history.replace(rival)
            self.buffer.keep(rival)
            self._rechain(origin)
        return effects

    def _accept(self, message: Message, source: str | None) -> list[Effect]:
        """Take a new, checked message: relay it once, deliver what became deliverable."""
        effects: list[Effect] = []
        targets = self._relay_targets() - self._already_sent_by(source) - {message.node_id}
        effects.extend(Send(peer, message) for peer in sorted(targets))
        self.counters["messages.relayed"] += len(effects)
        return effects + self._deliver_all(self.buffer.offer(message))

    def _deliver_all(self, deliverable: list[Message]) -> list[Effect]:
        effects: list[Effect] = []
        for delivered in deliverable:
            self.history.add(delivered)
            self._chain(delivered)
            effects.append(Deliver(delivered))
        self.counters["messages.delivered"] = len(self.history)
        self.counters["messages.held"] = self.buffer.held
        return effects

    # Which messages a node holds, as a hash: equal clocks but different messages show. ----

    def _chain(self, message: Message) -> None:
        origin = message.node_id
        link = hashlib.blake2b(self._chains.get(origin, b""), digest_size=16)
        link.update(message.signature.encode())
        self._chains[origin] = link.digest()
        self._history_hash = None

    def _rechain(self, origin: str) -> None:
        self._chains.pop(origin, None)
        for message in self.history.of_origin(origin):
            self._chain(message)

    def history_hash(self) -> str:
        if self._history_hash is None:
            total = hashlib.blake2b(digest_size=16)
            for origin in sorted(self._chains):
                total.update(origin.encode() + self._chains[origin])
            self._history_hash = total.hexdigest()
        return self._history_hash

    def chain_hashes(self) -> dict[str, str]:
        return {origin: chain.hex() for origin, chain in self._chains.items()}

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
        elif (
            beat.term > self.term
            and self.role is Role.COORDINATOR
            and peer in self.members
            and self._term_is_sane(beat.term)
        ):
            # A member lives in a newer term than ours (a claim we never saw took it there):
            # it refuses our claims and nodes as old, so take a term above it.
            self._max_term = max(self._max_term, beat.term)
            effects.extend(self._reassert(now, "a member is in a newer term"))
        return effects + self._compare_digest(peer, beat, now)

    def _compare_digest(self, peer: str, beat: Heartbeat, now: float) -> list[Effect]:
        if self.role is Role.JOINING and not self.has_joined:
            return []  # the join brings the whole history; asking too would fetch it twice
        mine = self.buffer.delivered
        behind = any(count > mine.get(node, 0) for node, count in beat.digest.items())
        # Same clock, different messages: one of us holds another version of some message.
        differs = (
            not behind
            and beat.hash != ""
            and beat.digest == mine
            and beat.hash != self.history_hash()
        )
        if not behind and not differs:
            return []
        last = self._last_request.get(peer)
        if last is not None and now - last < self.config.repair_interval:
            return []  # an answer may still be on its way
        self._last_request[peer] = now
        self._discussion_expected[peer] = now + 2 * self.config.repair_interval
        self.log.info("repair.requested", peer=peer, versions=differs)
        chains = self.chain_hashes() if differs else {}
        return [Send(peer, DiscussionRequest(self.delivered_clock(), chains))]

    def _send_discussion(
        self, peer: str, clock: dict[str, int], chains: dict[str, str] | None = None
    ) -> list[Effect]:
        missing = self.history.since(clock)
        if chains:
            # Every message of an origin whose chain differs: the peer finds the versions.
            differing = {o for o, h in self.chain_hashes().items() if chains.get(o, h) != h}
            if differing:
                ids = {m.id for m in missing}
                missing += [m for m in self.history if m.node_id in differing and m.id not in ids]
                missing.sort(key=canonical_key)
        if self._rivals:
            # Both versions of an equivocated slot: a node holding only the winner, whose
            # dependencies may never come, delivers the slot on the loser's (as we did).
            missing = [
                version
                for m in missing
                for version in (m, self._rivals.get(m.id))
                if version is not None
            ]
        if missing:
            self.log.info("repair.sent", peer=peer, messages=len(missing))
        return [
            Send(peer, Discussion(chunk))
            for chunk in chunk_messages(missing, self.config.discussion_chunk_bytes)
        ]

    def _on_discussion(self, peer: str, frame: Discussion, now: float) -> list[Effect]:
        # Asked for (a repair or a join), it may carry the peer's own messages in bulk;
        # unasked (an equivocation proof), its own messages count against its flood limit.
        live = now > self._discussion_expected.get(peer, float("-inf"))
        effects: list[Effect] = []
        for message in frame.messages:
            effects.extend(self._on_message(peer, message, now, live=live))
            if any(isinstance(e, Disconnect) and e.peer == peer for e in effects):
                break  # proven hostile: the rest of its frame is not worth checking
        return effects
