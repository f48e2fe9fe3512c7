"""``python -m director.probe``, the director's container health check, against a real
chat-director process and against addresses where no director answers."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from director.probe import main

pytestmark = pytest.mark.e2e

Capture = pytest.CaptureFixture[str]


def ready_port(process: subprocess.Popen[bytes], deadline: float) -> int:
    """The port from the director's ``director.ready`` log line (stdout unbuffered, so
    that select() sees every line that has come)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    pending = b""
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 65536)
        assert chunk, "chat-director exited before it was ready"
        *lines, pending = (pending + chunk).split(b"\n")
        for event in map(json.loads, lines):
            if event["event"] == "director.ready":
                return int(event["port"])
    raise AssertionError("chat-director was not ready within the deadline")


@pytest.fixture(scope="module")
def director_url() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "director", "--port", "0", "--insecure"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,
    )
    try:
        yield f"http://127.0.0.1:{ready_port(process, time.monotonic() + 30)}"
    finally:
        process.terminate()
        process.wait(10)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_running_director_is_healthy(director_url: str, capsys: Capture) -> None:
    assert main([f"{director_url}/healthz"]) == 0
    assert capsys.readouterr() == ("", "")


def test_as_a_command(director_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "director.probe", f"{director_url}/healthz"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_an_error_status_is_unhealthy(director_url: str, capsys: Capture) -> None:
    url = f"{director_url}/no-such-path"
    assert main([url]) == 1
    assert capsys.readouterr().err == f"director.probe: {url}: HTTP 404\n"


def test_nobody_listening_is_unhealthy(capsys: Capture) -> None:
    url = f"http://127.0.0.1:{closed_port()}/healthz"
    assert main([url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"director.probe: {url}: ") and "refused" in err


@pytest.mark.parametrize("argv", [["a", "b"], ["--help"]])
def test_usage(argv: list[str], capsys: Capture) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == "usage: python -m director.probe [URL]\n"
