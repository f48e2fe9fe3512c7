"""Failures in one process under a virtual clock: crashes, elections, partitions, bad links.

After every scenario: the survivors agree on one coordinator, the highest-ranked live
node, in one term; no term ever had two coordinators at once; every message a survivor
sent is in every survivor's history; histories are identical and causally ordered.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from chat_testing.cluster import Cluster, ClusterNode, open_cluster
from chat_testing.memory import DELIVER
from chatd.core.node import NodeError, Role
from tests.cluster.test_discussion import assert_causal

SEEDS = range(12)


class Watch:
    """Samples every node's role in virtual time: who claimed to coordinate which term."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.claims: defaultdict[int, set[str]] = defaultdict(set)

    async def run(self) -> None:
        while True:
            for member in self.cluster.live:
                node = member.node
                if node.role is Role.COORDINATOR:
                    self.claims[node.term].add(node.node_id)
            await trio.sleep(0.005)

    def assert_one_per_term(self) -> None:
        doubles = {term: ids for term, ids in self.claims.items() if len(ids) > 1}
        assert not doubles, f"terms with two coordinators: {doubles}"


class Traffic:
    """Each live sender sends a message every ``every`` seconds; acknowledged ids kept."""

    def __init__(self, cluster: Cluster, every: float = 0.02) -> None:
        self.cluster = cluster
        self.every = every
        self.sent: defaultdict[str, list[str]] = defaultdict(list)
        self.running = True

    async def run(self) -> None:
        count = 0
        while self.running:
            for member in self.cluster.live:
                try:
                    message = member.runtime.send_text(f"message {count}")
                except NodeError:
                    continue  # not in a discussion yet
                self.sent[member.node.node_id].append(message.id)
                count += 1
            await trio.sleep(self.every)

    def by(self, members: list[ClusterNode]) -> set[str]:
        return {i for m in members for i in self.sent[m.node.node_id]}


@asynccontextmanager
async def scenario(
    seed: int, names: list[str], priorities: list[int] | None = None
) -> AsyncIterator[tuple[Cluster, list[ClusterNode], Watch, Traffic]]:
    async with open_cluster(seed=seed) as cluster:
        members = []
        for i, name in enumerate(names):
            members.append(await cluster.add(name, priority=(priorities or [0] * 99)[i]))
        await cluster.wait_joined(*members)
        await cluster.wait_until(
            lambda: all(len(m.node.membership.members) == len(members) for m in members),
            "all joined",
        )
        watch, traffic = Watch(cluster), Traffic(cluster)
        cluster.nursery.start_soon(watch.run)
        cluster.nursery.start_soon(traffic.run)
        yield cluster, members, watch, traffic


async def crash_coordinator_until_an_election_starts(
    cluster: Cluster, members: list[ClusterNode]
) -> list[ClusterNode]:
    """Crash the coordinator; return the survivors once one of them stands or has won."""
    old = coordinator_of(members)
    survivors = [m for m in members if m is not old]
    cluster.crash(old)
    await cluster.wait_until(
        lambda: (
            any(m.node.election.candidacy is not None for m in survivors)
            or any(m.node.role is Role.COORDINATOR for m in survivors)
        ),
        "an election starts",
        within=5,
    )
    return survivors


def coordinator_of(members: list[ClusterNode]) -> ClusterNode:
    return next(m for m in members if m.node.role is Role.COORDINATOR)


def highest(members: list[ClusterNode]) -> ClusterNode:
    return max(members, key=lambda m: (m.node.me.priority, m.node.node_id))


async def converge(
    cluster: Cluster, survivors: list[ClusterNode], watch: Watch, traffic: Traffic
) -> None:
    """Stop traffic, wait for agreement and identical histories, then check everything."""
    winner = highest(survivors)

    def agreed() -> bool:
        return all(
            m.node.standing.coordinator == winner.node.node_id
            and m.node.term == winner.node.term
            and set(m.node.membership.members) == {s.node.node_id for s in survivors}
            for m in survivors
        )

    await cluster.wait_until(agreed, f"survivors agree on {winner.node.me.name}")
    traffic.running = False
    sent = traffic.by(survivors)

    def complete() -> bool:
        first = survivors[0].history_ids
        return sent <= set(first) and all(m.history_ids == first for m in survivors)

    await cluster.wait_until(complete, "every survivor holds every survivor's message")
    assert winner.node.role is Role.COORDINATOR
    assert sum(m.node.role is Role.COORDINATOR for m in survivors) == 1
    ids = survivors[0].history_ids
    assert len(ids) == len(set(ids)), "a message was delivered twice"
    for member in survivors:
        assert_causal(member)
    watch.assert_one_per_term()
    assert cluster.director.registry.coordinator() is not None
    await cluster.wait_until(
        lambda: (
            (rec := cluster.director.registry.coordinator()) is not None
            and rec.node_id == winner.node.node_id
        ),
        "the director knows the winner",
    )


@pytest.mark.parametrize("seed", SEEDS)
async def test_coordinator_crash(autojump_clock: trio.testing.MockClock, seed: int) -> None:
    async with scenario(seed, ["a", "b", "c", "d", "e"]) as (cluster, members, watch, traffic):
        await trio.sleep(0.3)
        old = coordinator_of(members)
        term = old.node.term
        cluster.crash(old)
        survivors = [m for m in members if m is not old]
        await converge(cluster, survivors, watch, traffic)
        assert highest(survivors).node.term > term


@pytest.mark.parametrize("seed", SEEDS)
async def test_coordinator_crash_then_the_winner_dies_mid_election(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    async with scenario(seed, ["a", "b", "c", "d", "e"]) as (cluster, members, watch, traffic):
        survivors = await crash_coordinator_until_an_election_starts(cluster, members)
        doomed = highest(survivors)
        cluster.crash(doomed)
        survivors.remove(doomed)
        await converge(cluster, survivors, watch, traffic)


@pytest.mark.parametrize("seed", SEEDS[:6])
async def test_two_nodes_crash_at_once(autojump_clock: trio.testing.MockClock, seed: int) -> None:
    names = ["a", "b", "c", "d", "e", "f", "g", "h"]  # beyond a full mesh: a real overlay
    async with scenario(seed, names) as (cluster, members, watch, traffic):
        await trio.sleep(0.2)
        old = coordinator_of(members)
        other = random.Random(seed).choice([m for m in members if m is not old])
        cluster.crash(old)
        cluster.crash(other)
        await converge(cluster, [m for m in members if m not in (old, other)], watch, traffic)


@pytest.mark.parametrize("seed", SEEDS[:6])
async def test_isolated_coordinator_returns_as_a_member(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    async with scenario(seed, ["a", "b", "c", "d"], [4, 3, 2, 1]) as (
        cluster,
        members,
        watch,
        traffic,
    ):
        old = coordinator_of(members)
        cut = old.node.me.address
        # The coordinator hears nothing and nobody hears it (as if paused), director included.
        cluster.network.route = lambda s, d: (0, 0.0) if cut in (s, d) else DELIVER
        rest = [m for m in members if m is not old]
        await cluster.wait_until(
            lambda: all(
                m.node.standing.coordinator == highest(rest).node.node_id
                and m.node.role is not Role.JOINING
                for m in rest
            ),
            "the others elect a new coordinator",
        )
        cluster.network.route = lambda s, d: DELIVER
        # a has the highest priority, so once back it must win again, in a newer term.
        await converge(cluster, members, watch, traffic)
        assert coordinator_of(members) is old


@pytest.mark.parametrize("seed", SEEDS[:6])
async def test_partition_with_traffic_on_both_sides_then_heal(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    names = ["a", "b", "c", "d", "e", "f"]
    async with scenario(seed, names) as (cluster, members, watch, traffic):
        await trio.sleep(0.2)
        left = {m.node.me.address for m in members[:3]} | {"mem://director"}

        def split(s: str, d: str) -> tuple[int, float]:
            return DELIVER if (s in left) == (d in left) else (0, 0.0)

        cluster.network.route = split
        await trio.sleep(3)  # both sides carry on: each has or elects a coordinator
        for side in (members[:3], members[3:]):
            assert any(m.node.role is Role.COORDINATOR for m in side)
        counts = {m.node.me.name: len(traffic.sent[m.node.node_id]) for m in members}
        await trio.sleep(1)
        assert all(len(traffic.sent[m.node.node_id]) > counts[m.node.me.name] for m in members)
        cluster.network.route = lambda s, d: DELIVER
        await converge(cluster, members, watch, traffic)


@pytest.mark.parametrize("seed", SEEDS[:6])
async def test_a_higher_node_joining_during_an_election_wins(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    async with scenario(seed, ["a", "b", "c", "d"]) as (cluster, members, watch, traffic):
        survivors = await crash_coordinator_until_an_election_starts(cluster, members)
        newcomer = await cluster.add("boss", priority=10)
        await converge(cluster, [*survivors, newcomer], watch, traffic)
        assert coordinator_of([*survivors, newcomer]) is newcomer


def lossy(
    seed: int, loss: float, duplicate: float, delay: float
) -> Callable[[str, str], tuple[int, float]]:
    rng = random.Random(seed)

    def route(source: str, destination: str) -> tuple[int, float]:
        roll = rng.random()
        copies = 0 if roll < loss else 2 if roll < loss + duplicate else 1
        return copies, rng.random() * delay

    return route


@pytest.mark.parametrize("seed", SEEDS[:6])
async def test_lossy_duplicating_slow_links(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    async with scenario(seed, ["a", "b", "c", "d", "e", "f", "g"]) as (
        cluster,
        members,
        watch,
        traffic,
    ):
        cluster.network.route = lossy(seed, loss=0.02, duplicate=0.02, delay=0.01)
        await trio.sleep(2)
        cluster.network.route = lambda s, d: DELIVER
        await converge(cluster, members, watch, traffic)
