"""The installed ``chatctl`` console script, run as a real process."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.chatctl.fakedaemon import Answer, FakeDaemon, line, message

CHATCTL = str(Path(sys.executable).with_name("chatctl"))
DEADLINE = 10.0


def read_lines(fd: int, count: int, timeout: float = DEADLINE) -> list[bytes]:
    """Read until ``count`` complete lines arrived on ``fd``; fail after ``timeout``."""
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {data!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"end of output; got {data!r}"
            data += chunk
    return data.splitlines()[:count]


def test_missing_socket_exits_69(sockdir: Path) -> None:
    path = sockdir / "nobody.sock"
    done = subprocess.run(
        [CHATCTL, "--socket", str(path), "status"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert (done.returncode, done.stdout) == (69, "")
    assert done.stderr == f"chatctl: no chatd at {path} (is it running?)\n"


def test_ctrl_c_during_tail_follow_exits_0_quietly(daemon: FakeDaemon) -> None:
    with subprocess.Popen(
        [CHATCTL, "--socket", str(daemon.path), "tail", "-f", "-n", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TZ": "UTC"},
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            lines = read_lines(proc.stdout.fileno(), 2)
            assert lines == [b"07:08:02 bob: hello 2", b"07:08:03 alice: hello 3"]
            proc.send_signal(signal.SIGINT)
            assert proc.wait(DEADLINE) == 0
            assert proc.stdout.read() == b""
            assert proc.stderr.read() == b""
        finally:
            proc.kill()


def test_reader_closing_the_pipe_exits_quietly(daemon: FakeDaemon) -> None:
    # Far more than a pipe buffer holds, so chatctl is still writing when the reader leaves.
    many = [message(n) for n in range(5000)]
    daemon.replies["history"] = lambda _: Answer([line({"ok": True, "messages": many})])
    with subprocess.Popen(
        [CHATCTL, "--socket", str(daemon.path), "history"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert read_lines(proc.stdout.fileno(), 1)[0].endswith(b" alice: hello 0")
            proc.stdout.close()  # like `| head -1`
            assert proc.wait(DEADLINE) == 0
            assert proc.stderr.read() == b""
        finally:
            proc.kill()
