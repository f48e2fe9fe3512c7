"""The laws of the tests' reference vector clock (tests.core.vclock): merge is a join (lub),
compare/covers a partial order, tick advances."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.core.vclock import Order, VectorClock, compare, covers, merge, tick

NODES = ["a", "b", "c", "d"]
# Small keys and counts so that equal, ordered and concurrent pairs all come up often;
# explicit zeros check that an absent entry counts as 0.
clocks = st.dictionaries(st.sampled_from(NODES), st.integers(0, 4), max_size=len(NODES))


def normal(clock: VectorClock) -> dict[str, int]:
    """The clock as a map with absent = 0 made explicit."""
    return {node: count for node, count in clock.items() if count != 0}


@given(clocks, clocks)
def test_merge_is_commutative(a: dict[str, int], b: dict[str, int]) -> None:
    assert normal(merge(a, b)) == normal(merge(b, a))


@given(clocks, clocks, clocks)
def test_merge_is_associative(a: dict[str, int], b: dict[str, int], c: dict[str, int]) -> None:
    assert normal(merge(merge(a, b), c)) == normal(merge(a, merge(b, c)))


@given(clocks)
def test_merge_is_idempotent(a: dict[str, int]) -> None:
    assert normal(merge(a, a)) == normal(a)


@given(clocks, clocks)
def test_merge_does_not_mutate_its_inputs(a: dict[str, int], b: dict[str, int]) -> None:
    before = (dict(a), dict(b))
    merge(a, b)
    tick(a, "a")
    assert (a, b) == before


@given(clocks, clocks, clocks)
def test_merge_is_the_least_upper_bound(
    a: dict[str, int], b: dict[str, int], c: dict[str, int]
) -> None:
    joined = merge(a, b)
    assert covers(joined, a)
    assert covers(joined, b)
    # Least: any clock covering both covers the merge.
    if covers(c, a) and covers(c, b):
        assert covers(c, joined)
    # And the upper bound built from c is itself covered by a merge with c.
    assert covers(merge(joined, c), c)


@given(clocks, clocks)
def test_compare_is_antisymmetric(a: dict[str, int], b: dict[str, int]) -> None:
    mirror = {
        Order.BEFORE: Order.AFTER,
        Order.AFTER: Order.BEFORE,
        Order.EQUAL: Order.EQUAL,
        Order.CONCURRENT: Order.CONCURRENT,
    }
    assert compare(b, a) is mirror[compare(a, b)]


@given(clocks, clocks)
def test_compare_equal_iff_equal_maps_with_absent_zero(
    a: dict[str, int], b: dict[str, int]
) -> None:
    assert (compare(a, b) is Order.EQUAL) == (normal(a) == normal(b))


@given(clocks, clocks)
def test_compare_agrees_with_covers(a: dict[str, int], b: dict[str, int]) -> None:
    order = compare(a, b)
    assert (order in (Order.AFTER, Order.EQUAL)) == covers(a, b)
    assert (order in (Order.BEFORE, Order.EQUAL)) == covers(b, a)


def test_compare_examples() -> None:
    assert compare({"a": 1}, {"a": 1, "b": 0}) is Order.EQUAL
    assert compare({}, {"a": 1}) is Order.BEFORE
    assert compare({"a": 2}, {"a": 1}) is Order.AFTER
    assert compare({"a": 1}, {"b": 1}) is Order.CONCURRENT


@given(clocks, st.sampled_from([*NODES, "new"]))
def test_tick_makes_strictly_after(a: dict[str, int], node: str) -> None:
    ticked = tick(a, node)
    assert compare(ticked, a) is Order.AFTER
    assert compare(a, ticked) is Order.BEFORE
    assert ticked[node] == a.get(node, 0) + 1
    assert normal({k: v for k, v in ticked.items() if k != node}) == normal(
        {k: v for k, v in a.items() if k != node}
    )


@given(clocks)
def test_covers_is_reflexive(a: dict[str, int]) -> None:
    assert covers(a, a)


@given(clocks, clocks)
def test_covers_is_antisymmetric(a: dict[str, int], b: dict[str, int]) -> None:
    if covers(a, b) and covers(b, a):
        assert normal(a) == normal(b)


@given(clocks, clocks, clocks)
def test_covers_is_transitive(a: dict[str, int], b: dict[str, int], c: dict[str, int]) -> None:
    if covers(a, b) and covers(b, c):
        assert covers(a, c)
    # Make the premise hold every time too, so the property is never vacuous.
    ab, abc = merge(a, b), merge(merge(a, b), c)
    assert covers(abc, ab) and covers(ab, a) and covers(abc, a)
