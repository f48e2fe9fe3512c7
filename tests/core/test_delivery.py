"""CausalBuffer: every message exactly once, never before its dependencies, whatever the
arrival order; missing dependencies hold messages back; reused sequence numbers are stale."""

from __future__ import annotations

from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st

from chat.wire import Message
from chatd.core.delivery import CausalBuffer
from tests.core.histories import can_deliver, causal_histories, message
from tests.core.vclock import Order, compare, merge


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[Message], list[Message]]:
    """A causal history, and its messages in a random arrival order with duplicates."""
    history = draw(causal_histories())
    duplicates = draw(st.lists(st.sampled_from(history), max_size=10)) if history else []
    return history, draw(st.permutations(history + duplicates))


def offer_all(buffer: CausalBuffer, messages: list[Message]) -> list[Message]:
    """Offer each message in turn, checking every delivery's dependencies as it happens."""
    out: list[Message] = []
    clock = dict(buffer.delivered)
    for m in messages:
        for delivered in buffer.offer(m):
            assert can_deliver(clock, delivered), (
                f"{delivered.id} delivered before its dependencies"
            )
            clock = merge(clock, delivered.vector_clock)
            out.append(delivered)
        assert buffer.delivered == clock
    return out


@given(arrivals())
def test_any_arrival_order_delivers_each_message_once_in_causal_order(
    case: tuple[list[Message], list[Message]],
) -> None:
    history, arriving = case
    buffer = CausalBuffer()
    delivered = offer_all(buffer, arriving)
    assert sorted(m.id for m in delivered) == sorted(m.id for m in history)
    assert buffer.held == 0
    position = {m.id: i for i, m in enumerate(delivered)}
    for a in history:
        for b in history:
            if compare(a.vector_clock, b.vector_clock) is Order.BEFORE:
                assert position[a.id] < position[b.id], f"{a.id} → {b.id} delivered out of order"
    assert all(m.id in buffer for m in history)


@given(causal_histories(), st.data())
def test_a_missing_dependency_holds_exactly_its_dependents(
    history: list[Message], data: st.DataObject
) -> None:
    if not history:
        return
    missing = data.draw(st.sampled_from(history))
    others = [m for m in history if m.id != missing.id]
    dependents = {
        m.id for m in others if compare(missing.vector_clock, m.vector_clock) is Order.BEFORE
    }
    buffer = CausalBuffer()
    delivered = offer_all(buffer, data.draw(st.permutations(others)))
    assert {m.id for m in delivered} == {m.id for m in others} - dependents
    assert buffer.held == len(dependents)
    # The missing message arrives at last: it and everything held behind it are released.
    released = offer_all(buffer, [missing])
    assert [m.id for m in released][:1] == [missing.id]
    assert {m.id for m in released} == dependents | {missing.id}
    assert buffer.held == 0


def test_held_message_waits_for_a_dependency_of_another_origin() -> None:
    buffer = CausalBuffer()
    a1 = message("a", {"a": 1})
    b1 = message("b", {"a": 1, "b": 1})
    assert buffer.offer(b1) == []
    assert buffer.held == 1
    assert buffer.delivered == {}
    assert buffer.offer(a1) == [a1, b1]
    assert buffer.held == 0


def test_duplicate_id_is_dropped_whether_held_or_delivered() -> None:
    buffer = CausalBuffer()
    a1, a2 = message("a", {"a": 1}), message("a", {"a": 2})
    assert buffer.offer(a2) == []
    assert buffer.offer(a2) == []
    assert buffer.held == 1
    assert buffer.offer(a1) == [a1, a2]
    assert buffer.offer(a1) == []
    assert buffer.offer(a2) == []
    assert buffer.delivered == {"a": 2}


def test_is_stale_detects_a_reused_sequence_number() -> None:
    buffer = CausalBuffer()
    a1, a2 = message("a", {"a": 1}), message("a", {"a": 2})
    assert not buffer.is_stale(a1)
    buffer.offer(a1)
    buffer.offer(a2)
    forged = evolve(a2, id="a-2-again", message="another text for sequence number 2")
    assert buffer.is_stale(forged)
    assert buffer.is_stale(evolve(a1, id="a-1-again"))
    assert not buffer.is_stale(message("a", {"a": 3}))
    # Offered anyway, it changes nothing.
    assert buffer.offer(forged) == []
    assert buffer.delivered == {"a": 2}
    assert buffer.held == 0


def test_conflicting_copies_held_together_deliver_only_one() -> None:
    buffer = CausalBuffer()
    a1 = message("a", {"a": 1})
    a2 = message("a", {"a": 2})
    twin = evolve(a2, id="a-2-twin", message="twin")
    assert buffer.offer(a2) == [] and buffer.offer(twin) == []
    assert buffer.held == 2
    released = buffer.offer(a1)
    assert released[0] == a1 and len(released) == 2
    assert released[1].id in {a2.id, twin.id}
    assert buffer.held == 0
    assert buffer.delivered == {"a": 2}
