"""Presence events and renames in whole clusters over the memory network (virtual clock)."""

from __future__ import annotations

import trio

from chat.wire import Message
from chat_testing.cluster import Cluster, ClusterNode, open_cluster
from chatd.core.presence import Presence


class Watcher:
    """Everything a node hands its presence subscribers, in order."""

    def __init__(self, member: ClusterNode, nursery: trio.Nursery) -> None:
        self.items: list[Message | Presence] = []
        self.live = member.runtime.fanout.subscribe(presence=True)
        nursery.start_soon(self._read)

    async def _read(self) -> None:
        async for item in self.live:
            self.items.append(item)

    def events(self) -> list[tuple[str, str]]:
        return [(p.event, p.name) for p in self.items if isinstance(p, Presence)]


async def start(cluster: Cluster, names: list[str]) -> list[ClusterNode]:
    members = [await cluster.add(name) for name in names]
    await cluster.wait_joined(*members)
    await cluster.wait_until(
        lambda: all(len(m.node.membership.members) == len(members) for m in members),
        "membership converged",
    )
    return members


async def test_join_leave_and_timeout_are_seen_everywhere(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(seed=11) as cluster, trio.open_nursery() as nursery:
        (alice,) = await start(cluster, ["alice"])
        watch = Watcher(alice, nursery)
        bob = await cluster.add("bob")
        carol = await cluster.add("carol")
        await cluster.wait_until(
            lambda: ("joined", "bob") in watch.events() and ("joined", "carol") in watch.events(),
            "alice saw bob and carol join",
        )
        await cluster.leave(bob)
        await cluster.wait_until(lambda: ("left", "bob") in watch.events(), "bob left")
        cluster.crash(carol)
        await cluster.wait_until(
            lambda: ("timed-out", "carol") in watch.events(), "carol timed out"
        )
        assert ("left", "carol") not in watch.events()
        assert ("timed-out", "bob") not in watch.events()
        nursery.cancel_scope.cancel()


async def test_a_crashed_coordinator_is_timed_out_and_its_successor_announced(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(seed=12) as cluster, trio.open_nursery() as nursery:
        first = await cluster.add("alice", priority=10)
        await cluster.wait_joined(first)
        bob = await cluster.add("bob", priority=5)
        carol = await cluster.add("carol")
        await cluster.wait_until(
            lambda: all(len(m.node.membership.members) == 3 for m in (first, bob, carol)),
            "three members",
        )
        watch = Watcher(carol, nursery)
        cluster.crash(first)
        await cluster.wait_until(
            lambda: {("timed-out", "alice"), ("coordinator", "bob")} <= set(watch.events()),
            "carol saw alice time out and bob take over",
        )
        assert ("left", "alice") not in watch.events()
        stamped = [p for p in watch.items if isinstance(p, Presence)]
        assert all(p.at.endswith("Z") and "T" in p.at for p in stamped)
        nursery.cancel_scope.cancel()
