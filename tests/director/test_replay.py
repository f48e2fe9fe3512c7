"""The replay guard's rules, driven directly (pure code: ``now`` is an argument)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from director.replay import ReplayGuard


def test_a_nonce_is_accepted_once_within_the_window() -> None:
    guard = ReplayGuard(window=30, capacity=10)
    assert guard.check(100, "n1", now=100) == "fresh"
    assert guard.check(100, "n1", now=129) == "replayed"
    # Another timestamp with the same nonce is the same nonce: still refused.
    assert guard.check(120, "n1", now=129) == "replayed"
    assert guard.check(100, "n2", now=129) == "fresh"


def test_outside_the_window_either_way_is_stale() -> None:
    guard = ReplayGuard(window=30, capacity=10)
    assert guard.check(69, "a", now=100) == "stale"
    assert guard.check(131, "b", now=100) == "stale"
    assert guard.check(70, "c", now=100) == "fresh"
    assert guard.check(130, "d", now=100) == "fresh"
    assert len(guard) == 2  # the stale ones are not remembered


def test_nonces_are_forgotten_when_their_timestamp_leaves_the_window() -> None:
    guard = ReplayGuard(window=30, capacity=10)
    guard.check(100, "early", now=100)
    guard.check(110, "late", now=100)  # dated ahead: remembered until 140
    guard.expire(now=130)
    assert len(guard) == 2
    guard.expire(now=130.5)
    assert len(guard) == 1
    assert guard.check(100, "early", now=130.5) == "stale"
    assert guard.check(110, "late", now=139) == "replayed"
    guard.expire(now=141)
    assert len(guard) == 0


def test_full_refuses_without_forgetting() -> None:
    guard = ReplayGuard(window=30, capacity=2)
    assert guard.check(100, "a", now=100) == "fresh"
    assert guard.check(105, "b", now=105) == "fresh"
    assert guard.check(106, "c", now=106) == "full"
    assert guard.retry_after(now=106) == 24
    assert guard.check(100, "a", now=106) == "replayed"  # not forgotten to make room
    assert len(guard) == 2
    assert guard.check(131, "c", now=131) == "fresh"  # "a" left the window at 130
    assert len(guard) == 2


@given(
    st.lists(
        st.tuples(
            st.floats(0, 20),  # time passing before this request
            st.sampled_from("abcdef"),  # nonce
            st.integers(-40, 40),  # the request's timestamp relative to now
            st.booleans(),  # resend an earlier request instead
        ),
        max_size=60,
    ),
    st.integers(1, 4),
)
def test_no_request_is_ever_served_twice(
    steps: list[tuple[float, str, int, bool]], capacity: int
) -> None:
    guard = ReplayGuard(window=30, capacity=capacity)
    now = 1000.0
    sent: list[tuple[int, str]] = []
    served: set[tuple[int, str]] = set()
    for wait, nonce, offset, resend in steps:
        now += wait
        request = sent[len(sent) // 2] if resend and sent else (int(now) + offset, nonce)
        sent.append(request)
        verdict = guard.check(*request, now=now)
        assert len(guard) <= capacity
        if verdict == "fresh":
            assert request not in served, f"{request} served twice"
            assert abs(now - request[0]) <= 30
            served.add(request)
        elif verdict == "full":
            assert len(guard) == capacity
