"""History: the canonical order depends only on the set of messages and extends causality;
``since`` and ``last`` select the right messages."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st

from chat.wire import Message
from chatd.core.delivery import CausalBuffer
from chatd.core.history import History
from tests.core.histories import causal_histories
from tests.core.vclock import Order, compare, covers, merge


def replica(arriving: list[Message]) -> History:
    """A replica fed through causal delivery, as a node does."""
    buffer, history = CausalBuffer(), History()
    for m in arriving:
        for delivered in buffer.offer(m):
            history.add(delivered)
    return history


@given(causal_histories(), st.data())
def test_replicas_fed_in_different_orders_list_identically(
    messages: list[Message], data: st.DataObject
) -> None:
    first = replica(data.draw(st.permutations(messages)))
    second = replica(data.draw(st.permutations(messages)))
    assert len(first) == len(second) == len(messages)
    assert [m.id for m in first] == [m.id for m in second]


@given(causal_histories(), st.data())
def test_any_insertion_order_gives_the_same_list(
    messages: list[Message], data: st.DataObject
) -> None:
    """``add`` is a sorted insert: even a non-causal order of adds ends the same."""
    by_send, shuffled = History(), History()
    for m in messages:
        by_send.add(m)
    for m in data.draw(st.permutations(messages)):
        shuffled.add(m)
    assert list(by_send) == list(shuffled)


@given(causal_histories())
def test_canonical_order_extends_causality(messages: list[Message]) -> None:
    history = replica(messages)
    listed = list(history)
    for i, later in enumerate(listed):
        for earlier in listed[i + 1 :]:
            assert compare(earlier.vector_clock, later.vector_clock) is not Order.BEFORE


@given(causal_histories(), st.data())
def test_since_a_delivered_clock_is_exactly_what_it_does_not_cover(
    messages: list[Message], data: st.DataObject
) -> None:
    """The repair case: a peer's clock is a causally closed prefix of the history."""
    history = replica(messages)
    cut = data.draw(st.integers(0, len(messages)))
    peer_clock: dict[str, int] = {}
    for m in replica(messages[:cut]):
        peer_clock = merge(peer_clock, m.vector_clock)
    missing = history.since(peer_clock)
    assert missing == [m for m in history if not covers(peer_clock, m.vector_clock)]
    assert {m.id for m in missing} == {m.id for m in messages[cut:]}


@given(
    causal_histories(),
    st.dictionaries(st.sampled_from(["n0", "n1", "n2", "n3", "other"]), st.integers(0, 8)),
)
def test_since_any_clock_returns_the_events_it_has_not_counted(
    messages: list[Message], clock: dict[str, int]
) -> None:
    history = replica(messages)
    missing = history.since(clock)
    expected = [m for m in history if m.vector_clock[m.node_id] > clock.get(m.node_id, 0)]
    assert missing == expected
    assert history.since({}) == list(history)


@given(causal_histories(), st.integers(-2, 40))
def test_last_n_is_the_tail_of_the_canonical_order(messages: list[Message], count: int) -> None:
    history = replica(messages)
    listed = list(history)
    expected = listed[max(0, len(listed) - count) :] if count > 0 else []
    assert history.last(count) == expected
    assert len(history.last(count)) == max(0, min(count, len(listed)))


@given(causal_histories(), st.data())
def test_a_replaced_version_is_found_by_id_by_origin_and_in_repairs(
    messages: list[Message], data: st.DataObject
) -> None:
    """An equivocation resolved: the winner takes the place of the delivered version in
    every index (order, id, origin), so repairs and hash chains see only the winner."""
    history = replica(messages)
    if not messages:
        return
    old = data.draw(st.sampled_from(messages))
    winner = attrs.evolve(old, message=old.message + " (the other version)")
    history.replace(winner)
    assert history.get(old.id) is winner
    assert winner in history.of_origin(old.node_id)
    assert old not in history.of_origin(old.node_id)
    seqs = [m.vector_clock[old.node_id] for m in history.of_origin(old.node_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert winner in history.since({}) and old not in history.since({})
    below = {old.node_id: old.vector_clock[old.node_id] - 1}
    assert winner in history.since(below) and old not in list(history)
    assert len(history) == len(messages)
