"""The malicious-member toolkit over the memory transport, under a virtual clock."""

from __future__ import annotations

import pytest
import trio

from chat.identity import Identity
from chat.wire import Heartbeat, Nodes
from chat_testing.cluster import open_cluster
from chat_testing.rogue import Rogue, open_links
from chatd.core.node import Role
from tests.cluster.test_discussion import histories_equal, start


async def test_a_rogue_joins_and_its_valid_message_reaches_everyone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_cluster(seed=11) as cluster:
        members = await start(cluster, ["a", "b", "c"])
        coordinator = next(m for m in members if m.node.role is Role.COORDINATOR)
        rogue = Rogue(
            Identity.generate(b"\x07" * 32),
            "rogue",
            cluster.secret,
            cluster.network.transport("mem://rogue"),
        )
        with trio.fail_after(30):
            async with rogue.connect(coordinator.node.me.public_address) as link:
                assert link.peer.node_id == coordinator.node.node_id
                await link.join()
                admitted = await link.wait_admitted()
                assert admitted.coordinator == coordinator.node.node_id
                await cluster.wait_until(
                    lambda: all(rogue.node_id in m.node.membership.members for m in members),
                    "every node lists the rogue",
                )
                # A link to every node, as a test sending each node its own version would use.
                addresses = [m.node.me.public_address for m in members]
                async with open_links(rogue, addresses) as links:
                    assert [lk.peer.node_id for lk in links] == [m.node.node_id for m in members]
                    message = rogue.message(1, "hello from the rogue")
                    await links[0].send(message)
                    await cluster.wait_until(
                        lambda: all(message.id in m.history_ids for m in members),
                        "the rogue's message reaches everyone",
                    )
                    # Heartbeats keep it a member well past failure_timeout.
                    await trio.sleep(3 * cluster.config.failure_timeout)
                    assert all(rogue.node_id in m.node.membership.members for m in members)
                    assert all(not lk.closed.is_set() for lk in links)
                    assert link.frames(Heartbeat)
                    assert link.frames(Nodes)
                # The rogue never ran an election it could win.
                assert all(m.node.standing.coordinator == coordinator.node.node_id for m in members)


async def test_a_peer_handing_over_a_forged_message_is_banned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Another origin's message with its text changed: whoever hands over an invalid message
    # is hostile, so the node closes its link and will not take it back.
    async with open_cluster(seed=12) as cluster:
        members = await start(cluster, ["a", "b", "c"])
        rogue = Rogue(
            Identity.generate(b"\x08" * 32),
            "rogue",
            cluster.secret,
            cluster.network.transport("mem://rogue"),
        )
        target = members[1]
        with trio.fail_after(30):
            async with rogue.connect(target.node.me.public_address) as link:
                await link.send_raw(forged_relay(rogue))
                await link.closed.wait()
            assert rogue.node_id in target.node.links.banned
            async with rogue.connect(target.node.me.public_address) as again:
                await again.closed.wait()  # banned: closed as soon as it is linked
            members[0].runtime.send_text("honest traffic goes on")
            await cluster.wait_until(
                lambda: all(len(m.history_ids) == 1 for m in members), "everyone has it"
            )
        assert all(rogue.node_id not in m.node.replica.delivered_clock() for m in members)


def forged_relay(rogue: Rogue) -> dict[str, object]:
    """Another origin's message, signed by the rogue: a relay the receiver must check."""
    other = Identity.generate(b"\x09" * 32)
    real = other.sign("victim", "2024-01-01T00:00:00.000Z", "real", {other.node_id: 1})
    return {
        "type": "message",
        "id": real.id,
        "node-id": real.node_id,
        "name": "victim",
        "timestamp": real.timestamp,
        "message": "forged text",
        "vector-clock": {other.node_id: 1},
        "public-key": real.public_key,
        "signature": rogue.identity.sign_bytes(b"whatever"),
    }


async def equivocation_scenario(seed: int, names: list[str]) -> None:
    async with open_cluster(seed=seed) as cluster:
        members = await start(cluster, names)
        coordinator = next(m for m in members if m.node.role is Role.COORDINATOR)
        rogue = Rogue(
            Identity.generate(bytes([seed]) * 32),
            "rogue",
            cluster.secret,
            cluster.network.transport("mem://rogue"),
        )
        version_a, version_b = rogue.equivocation(1, "to the first half", "to the second half")
        half = len(members) // 2
        async with rogue.connect(coordinator.node.me.public_address) as link:
            await link.join()
            await link.wait_admitted()
            addresses = [m.node.me.public_address for m in members]
            async with open_links(rogue, addresses) as links:
                for i, lk in enumerate(links):
                    await lk.send(version_a if i < half else version_b)
                await cluster.wait_until(
                    lambda: all(version_a.id in m.history_ids for m in members),
                    "every node delivers one version",
                )
        kept = min(version_a, version_b, key=lambda m: m.signature)
        await cluster.wait_until(
            lambda: all(m.node.replica.history.get(kept.id) == kept for m in members),
            "every node keeps the lower signature",
        )
        for i, member in enumerate(members):
            member.runtime.send_text(f"honest {i}")
        await cluster.wait_until(
            lambda: histories_equal(members, 1 + len(members)), "identical histories"
        )
        assert all(rogue.node_id in m.node.links.banned for m in members)


@pytest.mark.parametrize("seed", range(4))
async def test_an_equivocation_split_across_the_group_ends_in_one_history(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    with trio.fail_after(60):
        await equivocation_scenario(20 + seed, ["a", "b", "c", "d"])
