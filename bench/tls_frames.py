"""What TLS adds to one websocket frame, apart from everything else a node does.

One process, one trio-websocket link over 127.0.0.1 with chatd's TLS contexts
(``chatd.tls``, TLS 1.3) or plain; the process's CPU time (``time.process_time``: both
ends, every thread) per frame sent and received. Two loads: ping-pong (each frame alone on
the wire, like window 1 and heartbeats) and a stream (frames queue up, like window 16).

chatd does TLS with ``chatd.tls_socket`` (``ssl.SSLSocket`` on the non-blocking socket:
OpenSSL reads and writes the descriptor itself); it used ``trio.SSLStream`` (OpenSSL
through a memory BIO, driven from Python) before, kept here as a third transport to show
what the change saved.
Knobs: trio-websocket's ``receive_buffer_size`` (4 KiB by default) and the frame size.
Used by S8; on its own:

    .venv/bin/python -m bench.tls_frames [--frames N] [--repeats R]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream, wrap_server_stream

from bench.common import Result
from chat.auth import Keyring
from chat.identity import Identity
from chatd.tls import PeerTls, peer_tls
from chatd.tls_socket import TlsSocketStream

SECRET = b"bench-frames-secret-0123456789abcdef"
FRAME_BYTES = 600  # a chat message frame: ~200-byte text, ids, clock, key, signature
MAX_FRAME = 1 << 20
# chatd's own (chatd.tls_socket: ssl.SSLSocket on the socket), and trio.SSLStream, which
# chatd used before it: what the change saved.
CHATD = "chatd (ssl.SSLSocket)"
TRANSPORTS = ("plain", "trio.SSLStream", CHATD)


async def _secure(
    stream: trio.SocketStream, transport: str, tls: PeerTls | None, server: bool
) -> trio.abc.Stream:
    if transport == "plain" or tls is None:
        return stream
    context = tls.server if server else tls.client
    if transport == CHATD:
        return await TlsSocketStream.handshake(stream, context, server=server)
    ssl_stream = trio.SSLStream(stream, context, server_side=server)
    await ssl_stream.do_handshake()
    return ssl_stream


async def _link(
    transport: str, load: str, frames: int, size: int, receive_buffer: int | None
) -> float:
    """CPU seconds of this process to move ``frames`` frames over one link."""
    tls = None if transport == "plain" else peer_tls(Identity.generate(), Keyring.of(SECRET))
    payload = "x" * size
    options: dict[str, Any] = {"max_message_size": MAX_FRAME}
    if receive_buffer is not None:
        options["receive_buffer_size"] = receive_buffer
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    accepted: list[trio.abc.Stream] = []
    server_ws: list[WebSocketConnection] = []
    ready = trio.Event()
    async with trio.open_nursery() as nursery:

        async def serve() -> None:
            # Runs alongside the dial: each end's TLS handshake needs the other's.
            accepted.append(await _secure(await listener.accept(), transport, tls, True))
            request = await wrap_server_stream(nursery, accepted[0], **options)
            server_ws.append(await request.accept())
            ready.set()

        nursery.start_soon(serve)
        dialed = await _secure(await trio.open_tcp_stream("127.0.0.1", port), transport, tls, False)
        client = await wrap_client_stream(
            nursery,
            dialed,  # type: ignore[arg-type]  # any trio Stream does
            "127.0.0.1",
            "/",
            **options,
        )
        await ready.wait()
        server = server_ws[0]
        cpu0 = time.process_time()
        if load == "ping-pong":
            for _ in range(frames // 2):
                await client.send_message(payload)
                await server.send_message(await server.get_message())
                await client.get_message()
        else:

            async def drain() -> None:
                for _ in range(frames):
                    await server.get_message()

            async with trio.open_nursery() as inner:
                inner.start_soon(drain)
                for _ in range(frames):
                    await client.send_message(payload)
        cpu = time.process_time() - cpu0
        nursery.cancel_scope.cancel()
    for stream in (dialed, *accepted):
        await trio.aclose_forcefully(stream)
    await listener.aclose()
    return cpu


def frame_cost_us(
    transport: str,
    load: str,
    frames: int = 4000,
    size: int = FRAME_BYTES,
    receive_buffer: int | None = None,
) -> float:
    """CPU µs per frame (sent by one end and received by the other)."""
    return trio.run(_link, transport, load, frames, size, receive_buffer) * 1e6 / frames


def frame_runs(
    load: str,
    frames: int,
    repeats: int,
    size: int = FRAME_BYTES,
    buffer: int | None = None,
    secure: str = CHATD,
) -> dict[str, list[float]]:
    """µs per frame of each mode (``secure``: TLS as chatd does it, ``insecure``: plain)
    over ``repeats`` runs that alternate which mode goes first."""
    runs: dict[str, list[float]] = {"secure": [], "insecure": []}
    for rep in range(repeats):
        for mode in ("secure", "insecure") if rep % 2 == 0 else ("insecure", "secure"):
            transport = secure if mode == "secure" else "plain"
            runs[mode].append(frame_cost_us(transport, load, frames, size, buffer))
    return runs


def compare(frames: int, repeats: int, variant: tuple[str, str, int, int | None, str]) -> Result:
    label, load, size, buffer, transport = variant
    runs = frame_runs(load, frames, repeats, size, buffer, transport)
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


SSLSTREAM = TRANSPORTS[1]
KIB64 = 65536
BIG = 256 * 1024  # a history chunk (Config.discussion_chunk_bytes)
DEFAULT_VARIANTS: list[tuple[str, str, int, int | None, str]] = [
    ("as chatd (ssl.SSLSocket)", "ping-pong", FRAME_BYTES, None, CHATD),
    ("as chatd (ssl.SSLSocket)", "stream", FRAME_BYTES, None, CHATD),
    ("trio.SSLStream (before)", "ping-pong", FRAME_BYTES, None, SSLSTREAM),
    ("trio.SSLStream (before)", "stream", FRAME_BYTES, None, SSLSTREAM),
    ("receive buffer 64 KiB", "stream", FRAME_BYTES, KIB64, CHATD),
    ("as chatd (ssl.SSLSocket)", "stream", BIG, None, CHATD),
    ("trio.SSLStream (before)", "stream", BIG, None, SSLSTREAM),
    ("receive buffer 64 KiB", "stream", BIG, KIB64, CHATD),
]


def main() -> None:
    from bench.report import table

    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for variant in DEFAULT_VARIANTS:
        # Large frames: fewer of them, more bytes.
        frames = args.frames if variant[2] < KIB64 else max(20, args.frames // 40)
        rows.append(compare(frames, args.repeats, variant))
    print(table({"scenario": "TLS frames", "title": "CPU per frame, one process", "rows": rows}))


if __name__ == "__main__":
    main()
