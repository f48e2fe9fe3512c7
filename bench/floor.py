"""The physical floor on this host: round trips of a ~200-byte message between two Python
processes, over plain TCP and over one bare trio-websocket hop carrying JSON.

``python -m bench.floor tcp|ws`` is the echo server (prints its port, serves one client);
``measure`` runs the client here and returns round-trip times. One-way ≈ round trip / 2.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

import trio
from trio_websocket import ConnectionClosed, WebSocketRequest, open_websocket_url, serve_websocket

from bench.common import ROOT, Result, payload, summary
from chat_testing.process import Process


def _serve_tcp() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        print(server.getsockname()[1], flush=True)
        server.settimeout(30)
        conn, _ = server.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(65536):
                conn.sendall(data)


async def _serve_ws() -> None:
    done = trio.Event()

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                message = json.loads(await ws.get_message())
                await ws.send_message(json.dumps(message))
        except ConnectionClosed:
            done.set()

    async with trio.open_nursery() as nursery:
        server: Any = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        print(server.port, flush=True)
        with trio.move_on_after(120):
            await done.wait()
        nursery.cancel_scope.cancel()


def _tcp_client(port: int, count: int) -> list[float]:
    rtts: list[float] = []
    data = payload("floor", 0).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            start = time.monotonic_ns()
            conn.sendall(data)
            got = 0
            while got < len(data):
                chunk = conn.recv(65536)
                if not chunk:
                    raise ConnectionError("echo server closed")
                got += len(chunk)
            rtts.append((time.monotonic_ns() - start) / 1e6)
    return rtts


async def _ws_client(port: int, count: int) -> list[float]:
    rtts: list[float] = []
    text = payload("floor", 0)
    with trio.fail_after(60):
        async with open_websocket_url(f"ws://127.0.0.1:{port}/") as ws:
            for _ in range(count):
                start = time.monotonic_ns()
                await ws.send_message(json.dumps({"op": "msg", "text": text}))
                json.loads(await ws.get_message())
                rtts.append((time.monotonic_ns() - start) / 1e6)
    return rtts


def measure(kind: str, count: int, warmup: int = 200) -> Result:
    """Round trips against an echo server child; the warm-up ones are dropped."""
    argv = [sys.executable, "-m", "bench.floor", kind]
    server = Process(f"floor-{kind}", argv, cwd=ROOT, max_lines=10_000)
    try:
        port = int(server.wait_line("", 20).strip())
        if kind == "tcp":
            rtts = _tcp_client(port, count + warmup)
        else:
            rtts = trio.run(_ws_client, port, count + warmup)
    finally:
        server.terminate(5)
    rtts = rtts[warmup:]
    return {"kind": kind, "round_trips": len(rtts), "rtt": summary(rtts), "rtts": rtts}


if __name__ == "__main__":
    if sys.argv[1:] == ["tcp"]:
        _serve_tcp()
    elif sys.argv[1:] == ["ws"]:
        trio.run(_serve_ws)
    else:
        sys.exit("usage: python -m bench.floor tcp|ws")
