"""A hypothesis strategy for real causal histories, shared by the delivery and history tests.

A few nodes take turns: a node either sends (its clock ticks) or delivers the next message
it can causally deliver from someone else. Each message's clock is therefore its sender's
delivered prefix plus one, with real concurrency between nodes.
"""

from __future__ import annotations

from hypothesis import strategies as st

from chat.wire import Message
from tests.core.vclock import merge, tick


def message(node: str, clock: dict[str, int], text: str = "") -> Message:
    """A chat message with dummy key material (CausalBuffer and History do not verify)."""
    seq = clock[node]
    return Message(
        id=f"{node}-{seq}",
        node_id=node,
        name=node,
        timestamp="2024-01-01T00:00:00Z",
        message=text or f"{node} #{seq}",
        vector_clock=dict(clock),
        public_key="",
        signature="",
    )


def can_deliver(clock: dict[str, int], m: Message) -> bool:
    """Whether a node at ``clock`` may deliver ``m`` now (the causal delivery rule)."""
    origin = m.node_id
    if clock.get(origin, 0) != m.vector_clock[origin] - 1:
        return False
    return all(clock.get(k, 0) >= c for k, c in m.vector_clock.items() if k != origin)


@st.composite
def causal_histories(draw: st.DrawFn, max_steps: int = 30) -> list[Message]:
    """Messages of a simulated run, listed in the order they were sent (a causal order)."""
    nodes = [f"n{i}" for i in range(draw(st.integers(2, 4)))]
    clocks: dict[str, dict[str, int]] = {node: {} for node in nodes}
    sent: list[Message] = []
    for _ in range(draw(st.integers(0, max_steps))):
        node = draw(st.sampled_from(nodes))
        ready = [m for m in sent if m.node_id != node and can_deliver(clocks[node], m)]
        if len(ready) > 0 and draw(st.booleans()):
            clocks[node] = merge(clocks[node], draw(st.sampled_from(ready)).vector_clock)
        else:
            clocks[node] = tick(clocks[node], node)
            sent.append(message(node, clocks[node]))
    return sent
