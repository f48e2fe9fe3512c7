"""An in-memory ``Transport``: whole clusters in one process, under ``trio.testing.MockClock``.

Every frame passes through ``MemoryNetwork.route``, a hook that a test replaces to drop,
duplicate, delay or partition traffic from a seeded random generator (reproducible chaos).
A delay holds the sending end, as a slow link does: frames on one link stay in order.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from chatd.channel import REFUSED
from chatd.transport import Channel, ChannelClosed, ConnectError, Handler

# Route hook: (source address, destination address) → (copies, delay in seconds).
# (1, 0) delivers; (0, 0) drops; (2, 0) duplicates; (1, 0.05) delivers 50 ms late.
Route = Callable[[str, str], tuple[int, float]]
DELIVER = (1, 0.0)


class MemoryChannel:
    def __init__(
        self,
        network: MemoryNetwork,
        local: str,
        remote: str,
        outgoing: trio.MemorySendChannel[bytes],
        incoming: trio.MemoryReceiveChannel[bytes],
        max_frame_bytes: int,
    ) -> None:
        self._network = network
        self._local = local
        self.remote = remote
        self._out = outgoing
        self._in = incoming
        self._max = max_frame_bytes
        self.deadline = math.inf  # the runtime's own handshake timeout applies
        self.peer_key: bytes | None = None  # no TLS in process
        self.cipher: str | None = None

    def authenticated(self) -> None:
        pass  # nothing is counted: in-process tests have no descriptors to protect

    async def send(self, data: bytes) -> None:
        if len(data) > self._max:
            await self.aclose()  # as a websocket closes with 1009
            raise ChannelClosed("message too big (1009)")
        copies, delay = self._network.route(self._local, self.remote)
        if delay > 0:
            await trio.sleep(delay)
        try:
            for _ in range(copies):
                await self._out.send(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ChannelClosed("closed") from None

    async def send_many(self, frames: list[bytes]) -> None:
        for data in frames:
            await self.send(data)

    async def receive(self) -> bytes:
        try:
            return await self._in.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise ChannelClosed("closed") from None

    async def aclose(self) -> None:
        self._out.close()
        self._in.close()


class MemoryNetwork:
    def __init__(self, buffer_frames: int = 10_000) -> None:
        self.buffer_frames = buffer_frames
        self._servers: dict[str, tuple[Handler, trio.Nursery]] = {}
        self.route: Route = lambda source, destination: DELIVER

    def reachable(self, source: str, destination: str) -> bool:
        return self.route(source, destination)[0] > 0

    def transport(self, address: str, max_frame_bytes: int = 1 << 20) -> MemoryTransport:
        return MemoryTransport(self, address, max_frame_bytes)

    def pair(
        self, client: str, server: str, max_frame_bytes: int
    ) -> tuple[MemoryChannel, MemoryChannel]:
        up_send, up_receive = trio.open_memory_channel[bytes](self.buffer_frames)
        down_send, down_receive = trio.open_memory_channel[bytes](self.buffer_frames)
        return (
            MemoryChannel(self, client, server, up_send, down_receive, max_frame_bytes),
            MemoryChannel(self, server, client, down_send, up_receive, max_frame_bytes),
        )


class MemoryTransport:
    def __init__(self, network: MemoryNetwork, address: str, max_frame_bytes: int) -> None:
        self.network = network
        self.address = address
        self.max_frame_bytes = max_frame_bytes

    @asynccontextmanager
    async def open_channel(self, address: str, peer: str | None = None) -> AsyncIterator[Channel]:
        server = self.network._servers.get(address)
        if server is None or not self.network.reachable(self.address, address):
            raise ConnectError(f"cannot reach {address}: connection refused", reason=REFUSED)
        handler, nursery = server
        client_end, server_end = self.network.pair(self.address, address, self.max_frame_bytes)
        nursery.start_soon(_serve_one, handler, server_end)
        try:
            yield client_end
        finally:
            await client_end.aclose()

    async def serve(self, handler: Handler, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self.network._servers[self.address] = (handler, nursery)
            try:
                task_status.started(self.address)
                await trio.sleep_forever()
            finally:
                del self.network._servers[self.address]


async def _serve_one(handler: Handler, channel: MemoryChannel) -> None:
    try:
        await handler(channel)
    finally:
        await channel.aclose()
