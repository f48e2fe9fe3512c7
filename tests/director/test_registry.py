"""The registry's transition rules, driven directly (pure code: no I/O, no waiting)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chat.wire import CoordinatorRecord, JoinAdvice, NodeRegistration, Unregistration
from director.registry import Accepted, Refused, Registry


def node(name: str) -> NodeRegistration:
    return NodeRegistration(node_id=name, address=f"ws://{name}:1", public_address=f"ws://{name}")


def record(name: str, term: int) -> CoordinatorRecord:
    return CoordinatorRecord(
        node_id=name, address=f"ws://{name}:1", public_address=f"ws://{name}", term=term
    )


def test_first_newcomer_starts_and_becomes_provisional() -> None:
    reg = Registry()
    assert reg.coordinator() is None
    assert reg.register_node(node("a"), now=0) == JoinAdvice(action="start", term=1)
    assert reg.coordinator() == record("a", 1)
    assert reg.provisional


def test_two_simultaneous_newcomers_do_not_both_start() -> None:
    reg = Registry()
    first = reg.register_node(node("a"), now=0)
    second = reg.register_node(node("b"), now=0)
    assert first.action == "start"
    assert second == JoinAdvice(action="join", coordinator=record("a", 1))


def test_retried_start_keeps_its_term() -> None:
    reg = Registry()
    reg.register_node(node("a"), now=0)
    assert reg.register_node(node("a"), now=1) == JoinAdvice(action="start", term=1)
    assert reg.max_term == 1


def test_starter_confirms_with_its_term() -> None:
    reg = Registry()
    reg.register_node(node("a"), now=0)
    outcome = reg.register_coordinator(record("a", 1), now=1)
    assert outcome == Accepted(record("a", 1), previous=record("a", 1))
    assert not reg.provisional


def test_equal_term_from_another_node_is_refused() -> None:
    reg = Registry()
    reg.register_node(node("a"), now=0)
    outcome = reg.register_coordinator(record("b", 1), now=1)
    assert outcome == Refused("term-taken", record("a", 1))
    assert reg.coordinator() == record("a", 1)


def test_higher_term_replaces_and_lower_is_refused() -> None:
    reg = Registry()
    assert reg.register_coordinator(record("a", 3), now=0) == Accepted(record("a", 3), None)
    assert reg.register_coordinator(record("b", 4), now=1) == Accepted(
        record("b", 4), record("a", 3)
    )
    assert reg.register_coordinator(record("a", 3), now=2) == Refused("stale-term", record("b", 4))
    # Even the coordinator's own late heartbeat of an older term loses.
    assert reg.register_coordinator(record("b", 2), now=3) == Refused("stale-term", record("b", 4))
    assert reg.coordinator() == record("b", 4)


def test_heartbeat_may_change_addresses() -> None:
    reg = Registry()
    reg.register_coordinator(record("a", 2), now=0)
    moved = CoordinatorRecord(node_id="a", address="ws://new:2", public_address="ws://n", term=2)
    assert isinstance(reg.register_coordinator(moved, now=1), Accepted)
    assert reg.coordinator() == moved


def test_unregister_needs_node_and_term_and_keeps_max_term() -> None:
    reg = Registry()
    reg.register_coordinator(record("a", 5), now=0)
    assert not reg.unregister(Unregistration(node_id="a", term=4))
    assert not reg.unregister(Unregistration(node_id="b", term=5))
    assert reg.unregister(Unregistration(node_id="a", term=5))
    assert reg.coordinator() is None
    assert not reg.unregister(Unregistration(node_id="a", term=5))
    assert reg.register_node(node("c"), now=1) == JoinAdvice(action="start", term=6)


def test_confirmed_coordinator_rejoining_starts_a_new_term() -> None:
    reg = Registry()
    reg.register_coordinator(record("a", 2), now=0)
    assert reg.register_node(node("a"), now=1) == JoinAdvice(action="start", term=3)
    assert reg.provisional


def test_silent_record_expires_after_ttl() -> None:
    reg = Registry(ttl=10)
    reg.register_coordinator(record("a", 1), now=0)
    assert reg.expire(now=10) is None
    reg.register_coordinator(record("a", 1), now=9)  # heartbeat refreshes
    assert reg.expire(now=19) is None
    assert reg.expire(now=19.5) == record("a", 1)
    assert reg.coordinator() is None
    assert reg.register_node(node("b"), now=20) == JoinAdvice(action="start", term=2)


def test_unconfirmed_starter_expires_and_next_newcomer_starts() -> None:
    reg = Registry(ttl=5)
    reg.register_node(node("a"), now=0)
    assert reg.register_node(node("b"), now=6) == JoinAdvice(action="start", term=2)
    # The late starter's own registration for term 1 now loses to b's term.
    assert reg.register_coordinator(record("a", 1), now=7) == Refused("stale-term", record("b", 2))


def test_without_ttl_nothing_expires() -> None:
    reg = Registry()
    reg.register_coordinator(record("a", 1), now=0)
    assert reg.expire(now=1e9) is None


names = st.sampled_from(["a", "b", "c"])
ops = st.one_of(
    st.tuples(st.just("coord"), names, st.integers(0, 6)),
    st.tuples(st.just("node"), names, st.just(0)),
    st.tuples(st.just("unreg"), names, st.integers(0, 6)),
)


@given(st.lists(ops, max_size=30))
def test_terms_never_go_back(steps: list[tuple[str, str, int]]) -> None:
    reg = Registry()
    for now, (op, name, term) in enumerate(steps):
        before_max = reg.max_term
        before = reg.coordinator()
        if op == "coord":
            reg.register_coordinator(record(name, term), now)
        elif op == "node":
            advice = reg.register_node(node(name), now)
            if advice.action == "start":
                # Whoever is told to start holds the record, at a term no one had before
                # (or the very term of its own unconfirmed start).
                assert reg.coordinator() == record(name, advice.term)
                assert advice.term > before_max or before == record(name, advice.term)
            else:
                assert before is not None and before.node_id != name
                assert advice.coordinator == before
        else:
            reg.unregister(Unregistration(node_id=name, term=term))
        current = reg.coordinator()
        assert reg.max_term >= before_max
        if current is not None:
            assert current.term <= reg.max_term
            if before is not None:
                # A replacement never lowers the coordinator's term.
                assert current.term >= before.term


def test_a_restarted_director_asks_newcomers_to_wait_for_the_coordinator() -> None:
    reg = Registry(not_before=10.0)
    assert reg.register_node(NodeRegistration("n", "ws://n", "ws://n"), now=1) == JoinAdvice(
        action="wait"
    )
    assert reg.coordinator() is None
    # The running discussion's coordinator re-registers within the grace period.
    assert isinstance(reg.register_coordinator(record("a", 7), now=2), Accepted)
    advice = reg.register_node(NodeRegistration("n", "ws://n", "ws://n"), now=3)
    assert advice == JoinAdvice(action="join", coordinator=record("a", 7))


def test_after_the_grace_period_a_newcomer_starts_a_discussion() -> None:
    reg = Registry(not_before=10.0)
    advice = reg.register_node(NodeRegistration("n", "ws://n", "ws://n"), now=10)
    assert advice == JoinAdvice(action="start", term=1)


def test_the_last_node_leaving_in_a_newer_term_forgets_an_older_record() -> None:
    reg = Registry()
    reg.register_coordinator(record("a", 3), now=0)
    assert not reg.unregister(Unregistration("b", 2))
    assert reg.unregister(Unregistration("b", 4))
    assert reg.coordinator() is None
