"""The frame path of a link: queued frames written in one go, over trio-websocket's
internals (``chatd.websocket.send_messages``), and ``PeerLink``'s queue."""

from __future__ import annotations

import inspect
import math
from importlib.metadata import version

import pytest
import trio
import trio.testing
from trio_websocket import WebSocketConnection, wrap_client_stream, wrap_server_stream

from chat.identity import Identity
from chat.wire import Frame, Heartbeat, Hello, MemberRecord, decode_frame, encode_frame
from chatd.channel import ChannelClosed
from chatd.peers import BATCH_BYTES, PeerLink, hello_for
from chatd.websocket import WebSocketChannel, send_messages


class CountingStream(trio.abc.Stream):
    """A stream that counts its writes."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.writes: list[bytes] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.stream.aclose()


async def ws_pair(
    nursery: trio.Nursery,
) -> tuple[WebSocketConnection, WebSocketConnection, CountingStream]:
    client_end, server_end = trio.testing.memory_stream_pair()
    counted = CountingStream(client_end)
    accepted: list[WebSocketConnection] = []
    done = trio.Event()

    async def accept() -> None:
        request = await wrap_server_stream(nursery, server_end)
        accepted.append(await request.accept())
        done.set()

    nursery.start_soon(accept)
    client = await wrap_client_stream(nursery, counted, "test", "/")  # type: ignore[arg-type]
    await done.wait()
    return client, accepted[0], counted


def test_the_trio_websocket_internals_send_messages_uses_are_still_there() -> None:
    """``send_messages`` copies ``WebSocketConnection._send`` of trio-websocket 0.12.2 for
    many messages: if this fails, trio-websocket changed, and send_messages must follow."""
    assert version("trio-websocket") == "0.12.2"
    source = inspect.getsource(WebSocketConnection._send)
    for internal in ("self._wsproto.send(event)", "self._stream_lock", "self._stream.send_all"):
        assert internal in source
    assert "self._abort_web_socket()" in source
    assert inspect.iscoroutinefunction(WebSocketConnection._abort_web_socket)
    init = inspect.getsource(WebSocketConnection.__init__)
    for attribute in ("self._close_reason", "self._stream =", "self._stream_lock = trio."):
        assert attribute in init


async def test_a_batch_is_one_write_of_the_same_bytes_as_one_message_at_a_time() -> None:
    frames = [encode_frame(Heartbeat(node_id="c" * 32, term=t, digest={})) for t in range(5)]
    async with trio.open_nursery() as nursery:
        client, server, counted = await ws_pair(nursery)
        counted.writes.clear()
        for frame in frames:
            await client.send_message(frame)
        one_by_one = counted.writes.copy()
        counted.writes.clear()
        await send_messages(client, frames)
        # One write now, five before; a client masks with a random key, so the bytes
        # differ but not their length, and what arrives is the same.
        assert len(counted.writes) == 1
        assert len(one_by_one) == len(frames)
        assert len(counted.writes[0]) == sum(len(w) for w in one_by_one)
        got = [await server.get_message() for _ in range(2 * len(frames))]
        assert got == frames + frames
        nursery.cancel_scope.cancel()


async def test_a_batch_on_a_closed_websocket_raises_channel_closed() -> None:
    async with trio.open_nursery() as nursery:
        client, server, _ = await ws_pair(nursery)
        await server.aclose()
        channel = WebSocketChannel(client, "ws://test/", math.inf)
        with trio.fail_after(5), pytest.raises(ChannelClosed):
            while True:  # until the client has seen the close
                await channel.send_many([b"{}"])
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


class RecordingChannel:
    """A channel that records each ``send_many`` and blocks its writes while ``stuck``."""

    def __init__(self) -> None:
        self.remote = "test"
        self.deadline = math.inf
        self.peer_key: bytes | None = None
        self.cipher: str | None = None
        self.batches: list[list[bytes]] = []
        self.unstuck = trio.Event()
        self.unstuck.set()
        self.closed = trio.Event()

    def authenticated(self) -> None:
        pass

    async def send(self, data: bytes) -> None:
        await self.send_many([data])

    async def send_many(self, frames: list[bytes]) -> None:
        await self.unstuck.wait()
        self.batches.append(frames)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> bytes:
        await self.closed.wait()
        raise ChannelClosed("closed")

    async def aclose(self) -> None:
        self.closed.set()


def hello() -> Hello:
    ident = Identity.generate(bytes(32))
    me = MemberRecord(ident.node_id, "peer", "ws://127.0.0.1:1", "ws://127.0.0.1:1")
    return hello_for(me, 0, ident.public_key, secure=False)


def ignore(_: object) -> None:
    pass


def frames_of(n: int, size: int = 10) -> list[bytes]:
    return [b"%d:" % i + b"x" * size for i in range(n)]


async def test_frames_queued_together_go_in_one_batch_in_order_and_finish_flushes() -> None:
    channel = RecordingChannel()
    link = PeerLink(channel, hello(), queue_frames=100)
    sent = frames_of(7)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run, ignore, ignore)
        await trio.testing.wait_all_tasks_blocked()
        assert all(link.send_nowait(f) for f in sent[:5])
        await trio.testing.wait_all_tasks_blocked()
        assert channel.batches == [sent[:5]]
        assert all(link.send_nowait(f) for f in sent[5:])
        link.finish()  # the queued frames still go out, then the link ends
        assert not link.send_nowait(b"late")
    assert channel.batches == [sent[:5], sent[5:]]


async def test_a_batch_stops_growing_past_its_byte_budget() -> None:
    channel = RecordingChannel()
    link = PeerLink(channel, hello(), queue_frames=100)
    big = frames_of(3, size=BATCH_BYTES // 2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run, ignore, ignore)
        for frame in big:
            link.send_nowait(frame)
        link.finish()
    assert channel.batches == [big[:2], big[2:]]


async def test_a_peer_that_stops_reading_fills_the_queue_and_is_closed() -> None:
    channel = RecordingChannel()
    channel.unstuck = trio.Event()  # never set: the peer does not read
    link = PeerLink(channel, hello(), queue_frames=4)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(link.run, ignore, ignore)
        await trio.testing.wait_all_tasks_blocked()
        assert link.send_nowait(b"taken by the writer, stuck")
        await trio.testing.wait_all_tasks_blocked()
        assert all(link.send_nowait(f) for f in frames_of(4))
        assert not link.send_nowait(b"one too many")
    assert link.close_reason == "send queue full: peer is not reading"
    assert not link.send_nowait(b"after the end")


async def test_the_reader_decodes_and_hands_over_each_frame() -> None:
    """Through real websockets: frames written in one batch arrive as frames."""
    beats: list[Frame] = [Heartbeat(node_id="c" * 32, term=t, digest={}) for t in range(3)]
    got: list[Frame] = []
    all_in = trio.Event()

    def on_frame(frame: Frame) -> None:
        got.append(frame)
        if len(got) == len(beats):
            all_in.set()

    async with trio.open_nursery() as nursery:
        client, server, _ = await ws_pair(nursery)
        link = PeerLink(WebSocketChannel(server, "ws://test/"), hello(), 10)
        nursery.start_soon(link.run, on_frame, ignore)
        await send_messages(client, [encode_frame(b) for b in beats])
        with trio.fail_after(5):
            await all_in.wait()
        assert got == [decode_frame(encode_frame(b)) for b in beats] == beats
        nursery.cancel_scope.cancel()
