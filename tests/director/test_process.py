"""The real ``chat-director`` process: start on port 0, readiness, secret, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from socket import AF_UNIX, SOCK_DGRAM
from typing import Any

import pytest
import trio

from chatd.auth import Keyring
from chatd.director_client import DirectorClient, DirectorError
from chatd.wire import CoordinatorRecord, JoinAdvice, NodeRegistration

pytestmark = pytest.mark.e2e

SECRET = b"0123456789abcdef-director-e2e"
COMMAND = [sys.executable, "-m", "director"]


async def read_events(process: trio.Process, events: trio.MemorySendChannel[Any]) -> None:
    """Forward each JSON log line of the process's stdout; every line must be JSON."""
    assert process.stdout is not None
    buffer = b""
    async with events:
        async for chunk in process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                await events.send(json.loads(line))


async def wait_until_healthy(client: DirectorClient) -> None:
    """Poll /healthz; the caller's deadline bounds the wait."""
    while True:
        if await client.healthy():
            return
        await trio.sleep(0.05)


async def test_director_process(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    node = NodeRegistration(node_id="n1", address="ws://127.0.0.1:1", public_address="ws://n1")
    notify_name = f"chat-director-test-{os.getpid()}"
    env = {**os.environ, "NOTIFY_SOCKET": "@" + notify_name}
    with trio.fail_after(30), trio.socket.socket(AF_UNIX, SOCK_DGRAM) as notify:
        await notify.bind("\0" + notify_name)
        async with trio.open_nursery() as nursery:
            process = await trio.lowlevel.open_process(
                [
                    *COMMAND,
                    "--port",
                    "0",
                    "--startup-grace",
                    "0",
                    "--secret-file",
                    str(secret_file),
                ],
                stdout=subprocess.PIPE,
                env=env,
            )
            send, events = trio.open_memory_channel[Any](100)
            nursery.start_soon(read_events, process, send)
            try:
                ready = await anext(e async for e in events if e["event"] == "director.ready")
                url = f"http://127.0.0.1:{ready['port']}"
                assert await notify.recv(100) == b"READY=1"
                assert ready["address"] == url and ready["secure"] is True
                async with DirectorClient(url, Keyring.of(SECRET), 5) as client:
                    await wait_until_healthy(client)
                    assert await client.register_node(node) == JoinAdvice(action="start", term=1)
                    record = CoordinatorRecord(
                        node_id="n1", address="ws://127.0.0.1:1", public_address="ws://n1", term=1
                    )
                    assert await client.register_coordinator(record) is None
                    assert await client.coordinator() == record
                async with DirectorClient(url, None, 5) as unsigned:
                    with pytest.raises(DirectorError, match="403 forbidden"):
                        await unsigned.register_node(node)
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
                assert await notify.recv(100) == b"STOPPING=1"
                seen = [e["event"] async for e in events]
                assert "director.request.refused" in seen
                assert seen[-2:] == ["director.stopping", "director.stopped"]
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()


async def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [*COMMAND, *args], check=False, capture_stdout=True, capture_stderr=True
    )


async def test_secret_or_insecure_is_required() -> None:
    with trio.fail_after(30):
        result = await run("--port", "0")
        assert result.returncode == 2
        assert b"one of the arguments --secret-file --insecure is required" in result.stderr
        both = await run("--port", "0", "--insecure", "--secret-file", "/nonexistent")
        assert both.returncode == 2


async def test_unreadable_secret_file_exits_2(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_bytes(b"too short")
    with trio.fail_after(30):
        missing = await run("--secret-file", str(tmp_path / "missing"))
        assert missing.returncode == 2
        assert missing.stderr.startswith(b"chat-director: cannot read secret file")
        weak = await run("--secret-file", str(short))
        assert weak.returncode == 2
        assert b"a secret needs at least 16" in weak.stderr


async def test_port_in_use_exits_1() -> None:
    with trio.fail_after(30), trio.socket.socket() as busy:
        await busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await run("--insecure", "--port", str(port))
        assert result.returncode == 1
        assert result.stderr.decode() == (
            f"chat-director: cannot listen on 127.0.0.1:{port}: address already in use\n"
        )
