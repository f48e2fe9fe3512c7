"""The discussion's replica at this node: acceptance, relay, delivery, and repair.

- Messages follow one acceptance rule, the same at every honest node
  (``chatd.core.acceptance``); a peer that hands over an invalid one is banned. Each is
  relayed once, on first sight, down its origin's spanning tree of the overlay
  (``chatd.core.relay``), and delivered in causal order (``chatd.core.delivery``) into
  the history (``chatd.core.history``). Nothing is logged per message: counters.
- Anti-entropy: a heartbeat carries the sender's delivered clock and history hash
  (``chatd.core.chains``); a node behind, or with equal clocks and another hash, asks
  (``discussion-request``, at most once per ``repair_interval`` a peer) and is sent what
  it lacks in ``discussion`` frames (state transfer; a join is answered the same way).
"""

from __future__ import annotations

from chat.identity import Identity
from chat.wire import Discussion, DiscussionRequest, Heartbeat, Message
from chat.wire.bounds import MAX_CLOCK_ENTRIES
from chatd.config import Config
from chatd.core.abuse import TokenBucket
from chatd.core.acceptance import beyond_capacity, chunk_messages, invalid
from chatd.core.chains import Chains
from chatd.core.delivery import CausalBuffer, winner
from chatd.core.effects import Deliver, Disconnect, Effect, NodeError, Role, Send
from chatd.core.history import History, canonical_key
from chatd.core.links import Links
from chatd.core.membership import Membership
from chatd.core.recorder import Recorder
from chatd.core.relay import Relay
from chatd.core.standing import Standing


class Replica:
    def __init__(
        self,
        ident: Identity,
        config: Config,
        standing: Standing,
        membership: Membership,
        links: Links,
        log: Recorder,
    ) -> None:
        self.identity = ident
        self.config = config
        self.standing = standing
        self.membership = membership
        self.links = links
        self.log = log
        self.buffer = CausalBuffer()
        self.history = History()
        self.chains = Chains()
        self.relay = Relay()
        self._send_bucket = TokenBucket(config.flood_rate, config.flood_burst)
        self._flood: dict[str, TokenBucket] = {}
        self._equivocations: set[tuple[str, int]] = set()  # slots whose proof we spread
        self._last_request: dict[str, float] = {}
        # peer -> what its last digest showed we lack, and whether our versions differed
        self._gaps: dict[str, tuple[dict[str, int], bool]] = {}
        self._discussion_expected: dict[str, float] = {}  # peer -> until when
        self._last_discussion: dict[str, float] = {}  # peer -> its last discussion frame

    def delivered_clock(self) -> dict[str, int]:
        return dict(self.buffer.delivered)

    def heartbeat(self) -> Heartbeat:
        node_id, term = self.membership.node_id, self.standing.term
        return Heartbeat(node_id, term, self.delivered_clock(), self.chains.total())

    def expect(self, peer: str, until: float) -> None:
        """``peer`` was asked for messages: its ``discussion`` until then is no flood."""
        self._discussion_expected[peer] = until

    def streaming(self, peer: str, now: float) -> bool:
        """Whether ``peer`` is sending us a discussion (a frame of it within half a
        ``join_timeout``): a long history is still on its way."""
        last = self._last_discussion.get(peer, float("-inf"))
        return now - last < self.config.join_timeout / 2

    def forget(self, peer: str) -> None:
        self._last_discussion.pop(peer, None)
        self._last_request.pop(peer, None)
        self._gaps.pop(peer, None)

    # Messages ----------------------------------------------------------------------------

    def create(self, text: str, timestamp: str, now: float) -> tuple[Message, list[Effect]]:
        """Sign, deliver and relay a message of ours; raises ``NodeError`` if refused."""
        standing, config = self.standing, self.config
        if not standing.has_joined or standing.role is Role.LEAVING:
            raise NodeError("not-ready", f"this node is {standing.role.value}, not in a discussion")
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > config.max_text_bytes:
            raise NodeError(
                "too-large", f"text is {size} bytes; the limit is {config.max_text_bytes}"
            )
        if not text.strip():
            raise NodeError("bad-request", "text is empty")
        node_id = self.membership.node_id
        delivered = self.buffer.delivered
        if node_id not in delivered and len(delivered) >= MAX_CLOCK_ENTRIES:
            raise NodeError("not-ready", "this discussion has had too many authors for a new one")
        if not self._send_bucket.allow(now):
            raise NodeError(
                "rate-limited",
                f"over the flood limit ({config.flood_rate:g} messages/s, bursts of "
                f"{config.flood_burst}); try again shortly",
            )
        clock = dict(delivered)
        clock[node_id] = clock.get(node_id, 0) + 1
        message = self.identity.sign(self.membership.me.name, timestamp, text, clock)
        self.log.counters["messages.sent"] += 1
        return message, self.accept(message, source=None)

    def on_message(
        self, peer: str, message: Message, now: float, live: bool = True
    ) -> list[Effect]:
        counters = self.log.counters
        kept = self.buffer.signature_of(message.id)
        if kept == message.signature:
            counters["messages.duplicate"] += 1
            return []
        if live and peer == message.node_id and not self._flood_allows(peer, now):
            counters["messages.flood_dropped"] += 1
            self.links.note("message.dropped", peer, message.TYPE, "over the flood limit", now)
            return []
        problem = invalid(message, self.config)
        if problem is not None:
            counters["messages.refused"] += 1
            # The id is at most 64 characters: checked at decode.
            self.links.note("message.refused", peer, message.TYPE, problem, now, id=message.id)
            return self.links.ban(peer, f"sent an invalid message: {problem}")
        if kept is not None:
            return self._on_rival(peer, message)
        deferred = beyond_capacity(message, self.buffer, self.membership.members, self.config)
        if deferred is not None:
            counters["messages.deferred"] += 1
            self.links.note("message.deferred", peer, message.TYPE, deferred, now)
            return []
        return self.accept(message, source=peer)

    def _flood_allows(self, origin: str, now: float) -> bool:
        bucket = self._flood.get(origin)
        if bucket is None:
            bucket = self._flood[origin] = TokenBucket(
                2 * self.config.flood_rate, 2 * self.config.flood_burst
            )
        return bucket.allow(now)

    def _on_rival(self, peer: str, rival: Message) -> list[Effect]:
        """A second valid version of a message we hold: an equivocation by its origin."""
        origin, seq = rival.node_id, rival.vector_clock[rival.node_id]
        self.log.counters["messages.equivocations"] += 1
        held = self.buffer.held_version(rival.id)
        ours = held if held is not None else self.history.get(rival.id)
        assert ours is not None  # the buffer has seen this id: it is held or delivered
        effects: list[Effect] = []
        if (origin, seq) not in self._equivocations:
            self._equivocations.add((origin, seq))
            self.log.warning("message.equivocation", origin=origin, seq=seq, peer=peer)
            # The proof: both versions to every peer, so every honest node keeps the winner.
            proof = Discussion([ours, rival])
            effects.extend(Send(p, proof) for p in sorted(self.links.peers) if p != peer)
        effects.extend(self.links.ban(origin, "equivocated"))
        if held is not None:
            effects.extend(self._deliver_all(self.buffer.offer_rival(rival)))
        elif winner(ours, rival) is rival:
            self.history.replace(rival)
            self.buffer.keep(rival, replacing=ours)
            self.chains.rebuild(origin, self.history.of_origin(origin))
        return effects

    def accept(self, message: Message, source: str | None) -> list[Effect]:
        """Take a new, checked message: relay it once, deliver what became deliverable."""
        effects: list[Effect] = [
            Send(peer, message) for peer in self._relay_targets(message, source)
        ]
        self.log.counters["messages.relayed"] += len(effects)
        return effects + self._deliver_all(self.buffer.offer(message))

    def _deliver_all(self, deliverable: list[Message]) -> list[Effect]:
        effects: list[Effect] = []
        for delivered in deliverable:
            self.history.add(delivered)
            self.chains.extend(delivered)
            effects.append(Deliver(delivered))
        self.log.counters["messages.delivered"] = len(self.history)
        self.log.counters["messages.held"] = self.buffer.held
        return effects

    def _relay_targets(self, message: Message, source: str | None) -> list[str]:
        """Our children in the origin's tree of the overlay (``chatd.core.relay``); when
        this node or the origin is not placed in it yet, the flooding rule below."""
        origin, overlay, peers = message.node_id, self.membership.overlay, self.links.peers
        try:
            return self.relay.targets(self.membership.node_id, origin, overlay, peers)
        except KeyError:
            pass
        targets = set(self.membership.neighbours()) or set(peers)
        targets -= self._already_sent_by(source) | {origin}
        return sorted(targets & peers.keys())

    def _already_sent_by(self, source: str | None) -> set[str]:
        """Peers that ``source`` flooded the message to itself, by the same rule: its
        overlay neighbours. Whoever still misses it gets it from anti-entropy."""
        if source is None:
            return set()
        return {source, *self.membership.overlay.get(source, ())}

    # Repair ------------------------------------------------------------------------------

    def compare_digest(self, peer: str, beat: Heartbeat, now: float) -> list[Effect]:
        """Ask ``peer`` for what its heartbeat shows we lack, once two of its digests in a
        row show it: a message in flight when the first was sent is no gap."""
        if self.standing.role is Role.JOINING and not self.standing.has_joined:
            return []  # the join brings the whole history; asking too would fetch it twice
        if beat.hash == "":
            return []  # a beat without a digest
        mine = self.buffer.delivered
        gap = {node: count for node, count in beat.digest.items() if count > mine.get(node, 0)}
        # Same clock, different messages: one of us holds another version of some message.
        differs = not gap and beat.digest == mine and beat.hash != self.chains.total()
        before = self._gaps.get(peer)
        self._gaps[peer] = (gap, differs)
        if before is None:
            return []
        gap_before, differed = before
        behind = any(mine.get(node, 0) < count for node, count in gap_before.items())
        if not behind and not (differs and differed):
            return []
        last = self._last_request.get(peer)
        if last is not None and now - last < self.config.repair_interval:
            return []  # an answer may still be on its way
        self._last_request[peer] = now
        self.expect(peer, now + 2 * self.config.repair_interval)
        self.log.info("repair.requested", peer=peer, versions=differs)
        chains = self.chains.hashes() if differs else {}
        return [Send(peer, DiscussionRequest(self.delivered_clock(), chains))]

    def send_discussion(
        self, peer: str, clock: dict[str, int], chains: dict[str, str] | None = None
    ) -> list[Effect]:
        """What ``peer`` lacks by its ``clock`` (and its ``chains``), in chunks."""
        missing = self.history.since(clock)
        if chains:
            # Every message of an origin whose chain differs: the peer finds the versions.
            differing = {o for o, h in self.chains.hashes().items() if chains.get(o, h) != h}
            if differing:
                ids = {m.id for m in missing}
                missing += [m for m in self.history if m.node_id in differing and m.id not in ids]
                missing.sort(key=canonical_key)
        released_by = self.buffer.released_by
        if released_by:
            # With a winner delivered here on another version's dependencies, that version
            # too: a node holding only the winner, whose dependencies may never come,
            # delivers the slot as we did.
            missing = [
                version
                for m in missing
                for version in (m, released_by.get(m.id))
                if version is not None
            ]
        if missing:
            self.log.info("repair.sent", peer=peer, messages=len(missing))
        return [
            Send(peer, Discussion(chunk))
            for chunk in chunk_messages(missing, self.config.discussion_chunk_bytes)
        ]

    def on_discussion(self, peer: str, frame: Discussion, now: float) -> list[Effect]:
        # Asked for (a repair or a join), it may carry the peer's own messages in bulk;
        # unasked (an equivocation proof), its own messages count against its flood limit.
        live = now > self._discussion_expected.get(peer, float("-inf"))
        self._last_discussion[peer] = now
        effects: list[Effect] = []
        for message in frame.messages:
            effects.extend(self.on_message(peer, message, now, live=live))
            if any(isinstance(e, Disconnect) and e.peer == peer for e in effects):
                break  # proven hostile: the rest of its frame is not worth checking
        return effects
