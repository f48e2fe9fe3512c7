"""Clusters in one process over the memory network, under a virtual clock."""

from __future__ import annotations

import trio

from chat_testing.cluster import Cluster, ClusterNode, open_cluster
from chatd.core.node import Role


def histories_equal(members: list[ClusterNode], count: int) -> bool:
    first = members[0].history_ids
    return len(first) == count and all(m.history_ids == first for m in members)


def assert_causal(member: ClusterNode) -> None:
    """Canonical history never puts a message before one its clock depends on."""
    seen: dict[str, int] = {}
    for message in member.node.replica.history:
        for origin, count in message.vector_clock.items():
            if origin != message.node_id:
                assert seen.get(origin, 0) >= count, "a dependency is missing or later"
        assert seen.get(message.node_id, 0) == message.vector_clock[message.node_id] - 1
        seen[message.node_id] = message.vector_clock[message.node_id]


async def start(cluster: Cluster, names: list[str]) -> list[ClusterNode]:
    members = [await cluster.add(name) for name in names]
    await cluster.wait_joined(*members)
    await cluster.wait_until(
        lambda: all(len(m.node.membership.members) == len(members) for m in members),
        "membership converged",
    )
    return members


async def test_three_nodes_one_coordinator_and_every_message_everywhere(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(seed=1) as cluster:
        members = await start(cluster, ["alice", "bob", "carol"])
        roles = sorted(m.node.role.value for m in members)
        assert roles == ["coordinator", "member", "member"]
        assert len({m.node.standing.coordinator for m in members}) == 1
        for round_ in range(5):
            for member in members:
                member.runtime.send_text(f"round {round_} from {member.node.me.name}")
            await trio.sleep(0.001)
        await cluster.wait_until(lambda: histories_equal(members, 15), "all have 15 messages")
        for member in members:
            assert_causal(member)


async def test_joins_during_traffic_get_whole_history(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(seed=2) as cluster:
        members = await start(cluster, ["a", "b", "c"])
        sent = 0
        for i in range(8):
            joiner = await cluster.add(f"late{i}")
            members.append(joiner)
            for member in members[:3]:
                member.runtime.send_text(f"during join {i}")
                sent += 1
            await trio.sleep(0.05)
        await cluster.wait_joined(*members)
        await cluster.wait_until(lambda: histories_equal(members, sent), f"all have {sent}")
        for member in members[3:]:
            member.runtime.send_text("hello from a late joiner")
            sent += 1
        await cluster.wait_until(lambda: histories_equal(members, sent), "late joiners' messages")
        assert len(members[0].node.membership.members) == 11
        # 11 > full_mesh_max: a real overlay, every member with at least two neighbours.
        assert all(len(m.node.membership.neighbours()) >= 2 for m in members)
        for member in members:
            assert_causal(member)


async def test_graceful_leaves_shrink_membership_and_hand_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(seed=3) as cluster:
        members = await start(cluster, ["a", "b", "c", "d"])
        coordinator = next(m for m in members if m.node.role is Role.COORDINATOR)
        member = next(m for m in members if m is not coordinator)
        await cluster.leave(member)
        rest = [m for m in members if m is not member]
        await cluster.wait_until(
            lambda: all(member.node.node_id not in m.node.membership.members for m in rest),
            "member gone",
        )
        term = coordinator.node.term
        await cluster.leave(coordinator)
        survivors = [m for m in rest if m is not coordinator]
        expected = max(survivors, key=lambda m: (m.node.me.priority, m.node.node_id))
        await cluster.wait_until(
            lambda: all(
                m.node.standing.coordinator == expected.node.node_id
                and len(m.node.membership.members) == 2
                for m in survivors
            ),
            "survivors agree on the successor",
        )
        assert expected.node.role is Role.COORDINATOR
        assert all(m.node.term == term + 1 for m in survivors)
        survivors[0].runtime.send_text("after the hand-over")
        await cluster.wait_until(lambda: histories_equal(survivors, 1), "message after hand-over")
        director_record = cluster.director.registry.coordinator()
        await cluster.wait_until(
            lambda: (
                (rec := cluster.director.registry.coordinator()) is not None
                and rec.node_id == expected.node.node_id
            ),
            "director knows the successor",
        )
        assert director_record is not None
        for survivor in survivors:
            await cluster.leave(survivor)
        assert cluster.director.registry.coordinator() is None


async def test_wrong_secret_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    async with open_cluster(seed=4) as cluster:
        members = await start(cluster, ["a", "b"])
        members[0].runtime.send_text("private")
        intruder = await cluster.add("mallory", secret=b"not-the-group-secret")
        await trio.sleep(10)
        assert not intruder.node.ready
        assert len(intruder.node.replica.history) == 0
        assert all(intruder.node.node_id not in m.node.membership.members for m in members)
        members[1].runtime.send_text("still private")
        await cluster.wait_until(lambda: histories_equal(members, 2), "members still talk")
