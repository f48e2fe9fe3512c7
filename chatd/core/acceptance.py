"""Message acceptance: the same rule at every honest node (README: Trust model).

- **Valid** (checked whoever hands it over, so a direct receiver checks exactly what a
  relay receiver checks): text within the limit, a clock that counts its origin, an id
  derived from (origin, sequence number), its origin's signature. A peer that hands over
  an invalid message is hostile: it is banned and its link closed.
- **Held within bounds** (state that differs between nodes, so a refusal here is soft: the
  message is dropped without blame and anti-entropy brings it later): at most
  ``held_window`` ahead of what is delivered from its origin, ``max_held_messages`` held in
  all, at most ``clock_unknown_margin`` unknown origins in its clock, and at most twice the
  flood rate from an origin over its own link.
- **One version per (origin, sequence number)**: a second validly signed version is an
  equivocation: the lower signature wins everywhere, both versions are sent to every peer
  (the proof), and the origin is banned (``chatd.core.replica``).
"""

from __future__ import annotations

from collections.abc import Container

from chat import identity
from chat.wire import Message
from chat.wire.bounds import MAX_CLOCK_ENTRIES, MAX_MEMBERS
from chatd.config import Config
from chatd.core.delivery import CausalBuffer

# Origins a node takes messages from that are not current members (members who left, or a
# member's keys minted to fill the clock): the rest of the clock's entries stay for members.
ORIGINS_OUTSIDE_MEMBERS = MAX_CLOCK_ENTRIES - MAX_MEMBERS


def invalid(message: Message, config: Config) -> str | None:
    """What is wrong with ``message`` whatever the receiver's state, or None."""
    if len(message.message.encode("utf-8", "surrogatepass")) > config.max_text_bytes:
        return "text over the size limit"
    seq = message.vector_clock.get(message.node_id, 0)
    if seq < 1:
        return "vector clock does not count the origin"
    if message.id != identity.message_id(message.node_id, seq):
        return "id is not derived from its origin and sequence number"
    if not identity.verify(message):
        return "signature does not match node-id"
    return None


def beyond_capacity(
    message: Message, buffer: CausalBuffer, members: Container[str], config: Config
) -> str | None:
    """Why this node cannot hold ``message`` now (soft: it comes again later), or None."""
    origin = message.node_id
    delivered = buffer.delivered
    if message.vector_clock[origin] > delivered.get(origin, 0) + config.held_window:
        return "too far ahead of its origin's delivered messages"
    if buffer.held >= config.max_held_messages:
        return "too many messages held back"
    if origin not in delivered:
        # Every origin ever delivered stays in the vector clock: keep it within the wire's
        # bound, with room reserved for the members of the moment.
        if len(delivered) >= MAX_CLOCK_ENTRIES:
            return "too many origins"
        if origin not in members and len(delivered) >= ORIGINS_OUTSIDE_MEMBERS:
            return "too many origins that are not members"
    unknown = sum(
        1 for node in message.vector_clock if node not in delivered and node not in members
    )
    if unknown > config.clock_unknown_margin:
        return "clock names too many unknown origins"
    return None


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
