"""What TLS adds to one websocket frame, apart from everything else a node does.

One process, one trio-websocket link over 127.0.0.1 built like chatd's (``chatd.tls``
contexts, TLS 1.3), plain or TLS; the process's CPU time (``time.process_time``: both ends,
every thread) per frame sent and received. Two loads: ping-pong (each frame alone on the
wire, like window 1 and heartbeats) and a stream (frames queue up, like window 16), and
a few transport knobs to see what they change: trio-websocket's ``receive_buffer_size``
(4 KiB by default) and the frame size. Used by S8; on its own:

    .venv/bin/python -m bench.tls_frames [--frames N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import trio
from trio_websocket import WebSocketConnection, WebSocketRequest, open_websocket, serve_websocket

from bench.common import Result
from chatd.auth import Keyring
from chatd.identity import Identity
from chatd.tls import PeerTls, peer_tls

SECRET = b"bench-frames-secret-0123456789abcdef"
FRAME_BYTES = 600  # a chat message frame: ~200-byte text, ids, clock, key, signature
MAX_FRAME = 1 << 20


async def _link(
    tls: PeerTls | None, load: str, frames: int, size: int, receive_buffer: int | None
) -> float:
    """CPU seconds of this process to move ``frames`` frames over one link."""
    payload = "x" * size
    done = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        if load == "ping-pong":
            for _ in range(frames // 2):
                await ws.send_message(await ws.get_message())
        else:
            for _ in range(frames):
                await ws.get_message()
        done.set()
        await ws.aclose()

    buffers: dict[str, Any] = {}
    if receive_buffer is not None:
        buffers["receive_buffer_size"] = receive_buffer
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            lambda task_status: serve_websocket(
                handler,
                "127.0.0.1",
                0,
                tls.server if tls is not None else None,
                max_message_size=MAX_FRAME,
                task_status=task_status,
                **buffers,
            )
        )
        async with open_websocket(
            "127.0.0.1",
            server.port,
            "/",
            use_ssl=tls.client if tls is not None else False,
            max_message_size=MAX_FRAME,
            **buffers,
        ) as ws:
            cpu0 = time.process_time()
            await _drive(ws, load, frames, payload)
            await done.wait()
            cpu = time.process_time() - cpu0
        nursery.cancel_scope.cancel()
    return cpu


async def _drive(ws: WebSocketConnection, load: str, frames: int, payload: str) -> None:
    if load == "ping-pong":
        for _ in range(frames // 2):
            await ws.send_message(payload)
            await ws.get_message()
    else:
        for _ in range(frames):
            await ws.send_message(payload)


def frame_cost_us(
    secure: bool,
    load: str,
    frames: int = 4000,
    size: int = FRAME_BYTES,
    receive_buffer: int | None = None,
) -> float:
    """CPU µs per frame (sent by one end and received by the other)."""
    tls = None
    if secure:
        tls = peer_tls(Identity.generate(), Keyring.of(SECRET))
    cpu = trio.run(_link, tls, load, frames, size, receive_buffer)
    return cpu * 1e6 / frames


def frame_runs(
    load: str, frames: int, repeats: int, size: int = FRAME_BYTES, buffer: int | None = None
) -> dict[str, list[float]]:
    """µs per frame of each mode (``secure``: TLS, ``insecure``: plain) over ``repeats``
    runs that alternate which mode goes first."""
    runs: dict[str, list[float]] = {"secure": [], "insecure": []}
    for rep in range(repeats):
        for mode in ("secure", "insecure") if rep % 2 == 0 else ("insecure", "secure"):
            runs[mode].append(frame_cost_us(mode == "secure", load, frames, size, buffer))
    return runs


def compare(frames: int, repeats: int, variant: tuple[str, str, int, int | None]) -> Result:
    label, load, size, buffer = variant
    runs = frame_runs(load, frames, repeats, size, buffer)
    tls_us = statistics.median(runs["secure"])
    plain_us = statistics.median(runs["insecure"])
    return {
        "variant": label,
        "load": load,
        "frame_bytes": size,
        "tls_us_per_frame": tls_us,
        "plain_us_per_frame": plain_us,
        "tls_extra_us": tls_us - plain_us,
        "tls_vs_plain": tls_us / plain_us,
    }


DEFAULT_VARIANTS: list[tuple[str, str, int, int | None]] = [
    ("as chatd", "ping-pong", FRAME_BYTES, None),
    ("as chatd", "stream", FRAME_BYTES, None),
    ("receive buffer 64 KiB", "stream", FRAME_BYTES, 65536),
    ("as chatd, 256 KiB frames", "stream", 256 * 1024, None),
    ("receive buffer 64 KiB, 256 KiB frames", "stream", 256 * 1024, 65536),
]


def main() -> None:
    from bench.report import table

    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for variant in DEFAULT_VARIANTS:
        # Large frames: fewer of them, about as many bytes.
        frames = args.frames if variant[2] < 65536 else max(20, args.frames // 100)
        rows.append(compare(frames, args.repeats, variant))
    print(table({"scenario": "TLS frames", "title": "CPU per frame, one process", "rows": rows}))


if __name__ == "__main__":
    main()
