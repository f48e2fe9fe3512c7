"""The real ``chat-director`` process: start on port 0, readiness, status and watchdog
notifications, secret, SIGTERM."""

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

from chat.auth import Keyring
from chat.wire import CoordinatorRecord, NodeRegistration
from chatd.director_client import DirectorClient, DirectorError, load_director_cert
from tests.director.certs import self_signed

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


async def datagrams_until(notify: trio.socket.SocketType, wanted: bytes) -> list[bytes]:
    """The notifications received up to and including ``wanted``; the caller's deadline
    bounds the wait."""
    got: list[bytes] = []
    while wanted not in got:
        got.append(await notify.recv(200))
    return got


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
    # WATCHDOG_USEC without WATCHDOG_PID: the pid is not known before the start.
    env = {**os.environ, "NOTIFY_SOCKET": "@" + notify_name, "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
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
                notes = await datagrams_until(notify, b"STATUS=no coordinator, highest term 0")
                assert ready["address"] == url and ready["secure"] is True
                async with DirectorClient(url, Keyring.of(SECRET), 5) as client:
                    await wait_until_healthy(client)
                    assert (await client.register_node(node)).term == 1
                    record = CoordinatorRecord(
                        node_id="n1", address="ws://127.0.0.1:1", public_address="ws://n1", term=1
                    )
                    assert await client.register_coordinator(record) is None
                    assert await client.coordinator() == record
                notes += await datagrams_until(notify, b"STATUS=coordinator n1 at ws://n1, term 1")
                async with DirectorClient(url, None, 5) as unsigned:
                    with pytest.raises(DirectorError, match="403 forbidden"):
                        await unsigned.register_node(node)
                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
                notes += await datagrams_until(notify, b"STOPPING=1")
                assert b"WATCHDOG=1" in notes  # sent as soon as ready, then every second
                others = [d for d in notes if d != b"WATCHDOG=1"]
                assert others[-1:] == [b"STOPPING=1"], notes
                assert all(d.startswith(b"STATUS=") for d in others[:-1]), notes
                logged = [e["event"] async for e in events]
                assert "director.request.refused" in logged
                assert logged[-2:] == ["director.stopping", "director.stopped"]
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


async def test_port_in_use_or_a_foreign_host_exits_3() -> None:
    with trio.fail_after(30), trio.socket.socket() as busy:
        await busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = await run("--insecure", "--port", str(port))
        assert result.returncode == 3
        assert result.stderr.decode() == (
            f"chat-director: cannot listen on 127.0.0.1:{port}: address already in use\n"
        )
        # An address of no interface of this host (TEST-NET-1).
        foreign = await run("--insecure", "--host", "192.0.2.1", "--port", "0")
        assert foreign.returncode == 3
        assert foreign.stderr.decode() == (
            "chat-director: cannot listen on 192.0.2.1:0: cannot assign requested address\n"
        )


@pytest.mark.slow
async def test_tls_files_are_checked_up_front(tmp_path: Path) -> None:
    mine, other = self_signed(tmp_path, "mine"), self_signed(tmp_path, "other")
    junk = tmp_path / "junk"
    junk.write_text("not PEM")
    tls = ["--insecure", "--port", "0"]
    cases = [
        (["--tls-cert", str(mine.cert)], "--tls-cert and --tls-key go together"),
        (["--tls-key", str(mine.key)], "--tls-cert and --tls-key go together"),
        (
            ["--tls-cert", str(tmp_path / "none"), "--tls-key", str(mine.key)],
            f"chat-director: cannot read {tmp_path / 'none'}: no such file or directory",
        ),
        (
            ["--tls-cert", str(junk), "--tls-key", str(mine.key)],
            f"chat-director: cannot use --tls-cert {junk}: it holds no PEM certificate",
        ),
        (
            ["--tls-cert", str(mine.cert), "--tls-key", str(mine.cert)],
            f"chat-director: cannot use --tls-key {mine.cert}: it is not an unencrypted PEM"
            " private key",
        ),
        (
            ["--tls-cert", str(mine.cert), "--tls-key", str(other.key)],
            f"chat-director: cannot use --tls-key {other.key}: it is not the key of the"
            f" --tls-cert {mine.cert}",
        ),
    ]
    with trio.fail_after(60):
        for args, message in cases:
            result = await run(*tls, *args)
            assert result.returncode == 2, args
            assert message in result.stderr.decode(), result.stderr


async def test_https_and_sighup(tmp_path: Path) -> None:
    """HTTPS with the right files; SIGHUP swaps the keyring, and a bad file keeps it."""
    mine = self_signed(tmp_path, "director")
    old, new = b"0123456789abcdef-the-old-secret", b"fedcba9876543210-the-new-secret"
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(old + b"\n")
    argv = [*COMMAND, "--port", "0", "--startup-grace", "0", "--secret-file", str(secret_file)]
    argv += ["--tls-cert", str(mine.cert), "--tls-key", str(mine.key)]
    pin = load_director_cert(str(mine.cert))
    reg = NodeRegistration(node_id="n1", address="ws://127.0.0.1:1", public_address="ws://n1")

    async def registers(secret: bytes) -> bool:
        async with DirectorClient(url, Keyring.of(secret), 5, pinned_cert=pin) as client:
            try:
                await client.register_node(reg)
            except DirectorError as exc:
                assert "403 forbidden: bad X-Chat-Proof" in str(exc)
                return False
            return True

    async def next_event(name: str) -> dict[str, Any]:
        return await anext(e async for e in events if e["event"] == name)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE)
            send, events = trio.open_memory_channel[Any](100)
            nursery.start_soon(read_events, process, send)
            try:
                ready = await next_event("director.ready")
                url = ready["address"]
                assert url == f"https://127.0.0.1:{ready['port']}"
                assert ready["tls"] is True and ready["secure"] is True
                assert (await registers(old), await registers(new)) == (True, False)

                secret_file.write_bytes(b"# the new one proves\n" + new + b"\n" + old + b"\n")
                process.send_signal(signal.SIGHUP)
                reloaded = await next_event("director.secret.reloaded")
                assert (reloaded["secrets"], reloaded["first_changed"]) == (2, True)
                assert (await registers(old), await registers(new)) == (True, True)

                secret_file.write_bytes(b"short\n")
                process.send_signal(signal.SIGHUP)
                failed = await next_event("director.secret.reload_failed")
                assert "a secret needs at least 16" in failed["error"]
                assert (await registers(old), await registers(new)) == (True, True)

                secret_file.write_bytes(new + b"\n")
                process.send_signal(signal.SIGHUP)
                assert (await next_event("director.secret.reloaded"))["secrets"] == 1
                assert (await registers(old), await registers(new)) == (False, True)

                process.send_signal(signal.SIGTERM)
                assert await process.wait() == 0
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
