"""Peers that misbehave at the link level, in one process under a virtual clock."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import attrs
import structlog
import trio

from chat.auth import Keyring
from chat.identity import Identity
from chat.wire import PROTOCOL_VERSION, Hello, Join, encode_frame
from chat_testing.cluster import open_cluster
from chatd.config import TEST, Config
from chatd.core.node import Role
from chatd.peers import handshake
from tests.cluster.test_discussion import histories_equal, start


async def test_a_member_that_stops_reading_is_cut_off_without_stalling_anyone(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = attrs.evolve(TEST, peer_queue_frames=32)
    with structlog.testing.capture_logs() as logs, trio.fail_after(60):
        await run_deaf_peer_scenario(config, logs)


async def run_deaf_peer_scenario(config: Config, logs: list[MutableMapping[str, Any]]) -> None:
    async with open_cluster(seed=7, config=config) as cluster:
        cluster.network.buffer_frames = 8
        members = await start(cluster, ["a", "b", "c"])
        coordinator = next(m for m in members if m.node.role is Role.COORDINATOR)
        deaf = Identity.generate(b"\x42" * 32)
        hello = Hello(
            protocol_version=PROTOCOL_VERSION,
            node_id=deaf.node_id,
            name="deaf",
            address="mem://deaf",
            public_address="mem://deaf",
            priority=-1,
            term=0,
            nonce="",
            public_key=deaf.public_key,
            secure=True,
        )
        transport = cluster.network.transport("mem://deaf")
        joined = trio.Event()

        async def deaf_peer() -> None:
            address = coordinator.node.me.public_address
            async with transport.open_channel(address) as channel:
                keyring = Keyring.of(cluster.secret) if cluster.secret else None
                await handshake(channel, deaf, hello, keyring, coordinator.node.node_id)
                await channel.send(encode_frame(Join({})))
                joined.set()
                await trio.sleep_forever()  # and never reads another frame

        cluster.nursery.start_soon(deaf_peer)
        await joined.wait()
        await cluster.wait_until(
            lambda: deaf.node_id in coordinator.node.membership.members, "the deaf peer is admitted"
        )
        for i in range(200):
            members[i % 3].runtime.send_text(f"traffic {i}")
            await trio.sleep(0.001)
        await cluster.wait_until(lambda: histories_equal(members, 200), "everyone has all 200")
        await cluster.wait_until(
            lambda: all(deaf.node_id not in m.node.links.peers for m in members),
            "the deaf peer is disconnected",
        )
        assert any(
            e["event"] == "peer.closed" and "send queue full" in e.get("reason", "") for e in logs
        )
        await cluster.wait_until(
            lambda: all(deaf.node_id not in m.node.membership.members for m in members),
            "the deaf peer is dropped from the membership",
        )
