"""CPU per frame of chatd's own frame path over one link, apart from the core.

One process, two ``WebSocketTransport`` ends over 127.0.0.1 (plain, or TLS as a node with
a group secret runs it), a ``PeerLink`` on each: the sender encodes a signed ``message``
frame and queues it (``send_nowait``, as the runtime does), the receiver's link decodes it
and hands it over. The process's CPU time (both ends) per frame, with 1 frame in flight
(window 1, like heartbeats and a lone chat line) and 16 (window 16). Where
``bench/tls_frames.py`` measures bare trio-websocket, this measures what chatd adds.

    .venv/bin/python -m bench.link_frames [--frames N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio

from chat.auth import Keyring
from chat.identity import Identity
from chat.wire import Frame, Hello, MemberRecord, encode_frame
from chatd.peers import PeerLink, hello_for
from chatd.tls import peer_tls
from chatd.transport import Channel, WebSocketTransport

SECRET = b"bench-frames-secret-0123456789abcdef"
MAX_FRAME = 1 << 20
TEXT = "x" * 200


def _hello(ident: Identity) -> Hello:
    me = MemberRecord(ident.node_id, "bench", "ws://127.0.0.1:1", "ws://127.0.0.1:1")
    return hello_for(me, 0, ident.public_key, secure=False)


async def _link(secure: bool, window: int, frames: int) -> float:
    """CPU seconds of this process to move ``frames`` message frames over one link."""
    server_id, client_id = Identity.generate(), Identity.generate()
    keyring = Keyring.of(SECRET)

    def transport(ident: Identity) -> WebSocketTransport:
        tls = peer_tls(ident, keyring) if secure else None
        return WebSocketTransport("127.0.0.1", 0, MAX_FRAME, tls=tls)

    message = client_id.sign("bench", "2026-01-01T00:00:00.000Z", TEXT, {client_id.node_id: 1})
    received = 0
    arrived = trio.Event()
    done = trio.Event()

    def on_frame(_: Frame) -> None:
        nonlocal received, arrived
        received += 1
        arrived.set()

    async def serve(channel: Channel) -> None:
        channel.authenticated()
        link = PeerLink(channel, _hello(client_id), 4096)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.run, on_frame, lambda _: None)
            await done.wait()
            link.close("done")

    async with trio.open_nursery() as nursery:
        address = await nursery.start(transport(server_id).serve, serve)
        async with transport(client_id).open_channel(address, server_id.node_id) as channel:
            link = PeerLink(channel, _hello(server_id), 4096)
            nursery.start_soon(link.run, lambda _: None, lambda _: None)
            cpu0 = time.process_time()
            sent = 0
            while sent < frames:
                while sent - received >= window:
                    arrived = trio.Event()
                    await arrived.wait()
                link.send_nowait(encode_frame(message))
                sent += 1
            while received < frames:
                arrived = trio.Event()
                await arrived.wait()
            cpu = time.process_time() - cpu0
            done.set()
            link.close("done")
        nursery.cancel_scope.cancel()
    return cpu


def frame_cost_us(secure: bool, window: int, frames: int) -> float:
    """CPU µs per frame, both ends together."""
    return trio.run(_link, secure, window, frames) * 1e6 / frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("link   window  us/frame (both ends, median)  runs")
    for secure in (False, True):
        for window in (1, 16):
            runs = [frame_cost_us(secure, window, args.frames) for _ in range(args.repeats)]
            name = "tls" if secure else "plain"
            shown = " ".join(f"{r:.0f}" for r in runs)
            print(f"{name:6} {window:6}  {statistics.median(runs):27.1f}  {shown}")


if __name__ == "__main__":
    main()
