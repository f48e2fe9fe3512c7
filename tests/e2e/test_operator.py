"""What an operator meets when starting chatd wrong, against real processes: one line on
stderr and an exit status of its own (``chat.exits``), never a traceback or a node that
runs on uselessly."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from chat.exits import EXIT_CLOCK_SKEW, EXIT_LISTEN
from chat_testing.control import chatctl, history, send, status
from chat_testing.process import binary, child_env
from chat_testing.processes import DEFAULT_SECRET, Cluster, start_alice_and_bob
from chat_testing.waiting import DEFAULT_TIMEOUT, wait_until

pytestmark = pytest.mark.e2e

NO_DIRECTOR = "http://127.0.0.1:9"  # never reached: these nodes stop before asking


def test_a_port_in_use_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster, socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        node = cluster.spawn_node("late", NO_DIRECTOR, extra=["--port", str(port)])
        assert node.wait_exit() == EXIT_LISTEN
        assert node.stderr_lines == [
            f"chatd: cannot listen on 127.0.0.1:{port}: address already in use"
        ]
        (failed,) = node.find_events("node.listen_failed")
        assert failed["level"] == "error" and failed["port"] == port
        assert not node.socket.exists()


def test_a_host_of_another_machine_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        # TEST-NET-1: an address of no interface here.
        node = cluster.spawn_node("astray", NO_DIRECTOR, extra=["--host", "192.0.2.1"])
        assert node.wait_exit() == EXIT_LISTEN
        assert node.stderr_lines == [
            "chatd: cannot listen on 192.0.2.1:0: cannot assign requested address"
        ]


# The control socket: who may use it -------------------------------------------------------

OPERATOR, STRANGER, OPERATORS_GROUP = 4242, 4343, 4500


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path is in a root-only one)."""
    path = Path(tempfile.mkdtemp(prefix="chat-ops-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def chatctl_as(
    sock: Path, uid: int, gid: int, *args: str, groups: Sequence[int] = ()
) -> subprocess.CompletedProcess[str]:
    """The real chatctl, run as ``uid``:``gid`` with exactly the supplementary ``groups``
    (by setpriv: subprocess's own ``user=`` cannot exec the venv's interpreter here)."""
    ids = ["--reuid", str(uid), "--regid", str(gid)]
    ids += ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return subprocess.run(
        ["setpriv", *ids, binary("chatctl"), "--socket", str(sock), *args],
        capture_output=True,
        text=True,
        timeout=DEFAULT_TIMEOUT,
        env=child_env(),
        check=False,
    )


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv, to run clients as other users",
)
def test_root_the_owner_and_the_operators_given_may_use_the_socket(
    tmp_path: Path, shared_dir: Path
) -> None:
    with Cluster(tmp_path) as cluster:
        by_uid, by_gid, private = (
            cluster.spawn_node(name, NO_DIRECTOR, socket=shared_dir / f"{name}.sock", extra=extra)
            for name, extra in (
                ("by-uid", ["--control-uid", str(OPERATOR)]),
                ("by-gid", ["--control-gid", str(OPERATORS_GROUP)]),
                ("private", []),
            )
        )
        for node in (by_uid, by_gid, private):
            node.wait_ready()
            assert status(node.socket)["name"] == node.name  # root, always

        # --control-uid: that uid is let in; another one is refused by chatd, which says
        # which uid and why (the file is 0666: the credential check decides).
        assert stat.S_IMODE(by_uid.socket.stat().st_mode) == 0o666
        allowed = chatctl_as(by_uid.socket, OPERATOR, OPERATOR, "status", "--json")
        assert allowed.returncode == 0, allowed.stderr
        refused = chatctl_as(by_uid.socket, STRANGER, STRANGER, "status")
        assert refused.returncode == 15, refused  # 10 + forbidden
        assert refused.stderr == (
            f"chatctl: uid {STRANGER} may not use this chatd's socket: only root and uid"
            f" {OPERATOR} may use it (forbidden)\n"
        )
        # Refused before it sent its request, a client still reads why: chatd does not hang
        # up under its write (EPIPE, exit 74), even with several at once.
        with ThreadPoolExecutor(8) as pool:
            codes = list(
                pool.map(
                    lambda _: chatctl_as(by_uid.socket, STRANGER, STRANGER, "who").returncode,
                    range(8),
                )
            )
        assert codes == [15] * 8, codes
        logged = by_uid.wait_event("control.refused", uid=STRANGER)
        assert logged["gid"] == STRANGER and logged["pid"] > 0, logged
        assert logged["level"] == "warning"

        # --control-gid: the group's members get in, as their primary group or a
        # supplementary one (read from /proc); the file is 0660 in that group.
        info = by_gid.socket.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, OPERATORS_GROUP)
        primary = chatctl_as(by_gid.socket, STRANGER, OPERATORS_GROUP, "who")
        assert primary.returncode == 0, primary.stderr
        extra = chatctl_as(by_gid.socket, STRANGER, STRANGER, "who", groups=[OPERATORS_GROUP])
        assert extra.returncode == 0, extra.stderr
        outside = chatctl_as(by_gid.socket, STRANGER, STRANGER, "who")
        assert outside.returncode == 77, outside  # the file's mode: refused by the kernel
        assert f"uid {STRANGER} may not open it" in outside.stderr

        # No operators: 0600, and only root and chatd's own user get in.
        assert stat.S_IMODE(private.socket.stat().st_mode) == 0o600
        denied = chatctl_as(private.socket, OPERATOR, OPERATOR, "status")
        assert denied.returncode == 77, denied
        assert f"permission denied on {private.socket}: uid {OPERATOR}" in denied.stderr


# A director that refuses the node's proof ------------------------------------------------


class _SkewedDirector(http.server.BaseHTTPRequestHandler):
    """Answers every POST as a director whose clock is an hour off would (director.app)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(
            {
                "ok": False,
                "error": {
                    "code": "clock-skew",
                    "message": "timestamp outside the window (clock skew?): the request is"
                    " dated 3600s ahead of the director's clock",
                },
            }
        ).encode()
        self.send_response(403)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def skewed_director() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SkewedDirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_a_clock_the_director_refuses_at_start_up_stops_the_node_with_exit_5(
    tmp_path: Path, skewed_director: str
) -> None:
    with Cluster(tmp_path) as cluster:
        node = cluster.spawn_node("late-clock", skewed_director)
        assert node.wait_exit() == EXIT_CLOCK_SKEW
        event = node.wait_event("director.clock_skew")
        assert event["level"] == "error"
        (line,) = node.stderr_lines
        assert line.startswith(
            f"chatd: the director refuses this node's clock: director {skewed_director}"
            " answered POST /register_node with 403 forbidden: timestamp outside the window"
        ), line
        assert line.endswith("; set both hosts' clocks by NTP)"), line


@pytest.mark.slow
def test_once_joined_a_refused_secret_is_shown_but_never_stops_the_node(tmp_path: Path) -> None:
    """The director stops accepting the coordinator's secret (its file changed under it):
    the node says so in status and at error level, and chats on."""
    with Cluster(tmp_path) as cluster:
        director_secret = cluster.write_secret("director-secret", DEFAULT_SECRET)
        director = cluster.start_director(secret_file=director_secret)
        alice = cluster.spawn_node("alice", director.url).wait_ready()
        wait_until(
            lambda: status(alice.socket)["role"] == "coordinator",
            DEFAULT_TIMEOUT,
            "alice to start the discussion",
        )
        director_secret.write_bytes(b"a-secret-alice-does-not-hold-0123\n")
        director.signal(signal.SIGHUP)
        director.wait_event("director.secret.reloaded")
        refused = alice.wait_event("director.refused_secret")
        assert refused["level"] == "error"
        # Her heartbeats go on being refused, for longer than would stop a newcomer.
        wait_until(
            lambda: len(director.find_events("director.request.refused", reason="bad-proof")) >= 4,
            DEFAULT_TIMEOUT,
            "the director to refuse four of alice's registrations",
        )
        assert alice.alive
        assert status(alice.socket)["director"] == refused["error"]
        human = chatctl(alice.socket, "status").stdout.splitlines()
        assert any(
            row.startswith("director:") and "refuses this node's group secret" in row
            for row in human
        ), human
        assert send(alice.socket, "still here")["message"] == "still here"
        assert len(alice.find_events("director.refused_secret")) == 1  # once, not per refusal
        assert not alice.find_events("node.gave_up")


# chatctl tail --follow: a clean end, and a lost connection -------------------------------


@pytest.mark.slow
def test_tail_follow_ends_with_0_when_its_node_leaves_and_74_when_it_dies(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        director = cluster.start_director()
        alice, bob = start_alice_and_bob(cluster, director.url)
        sent = send(alice.socket, "to be tailed")
        wait_until(lambda: history(bob.socket), DEFAULT_TIMEOUT, "bob to have alice's message")
        tails = {
            node.name: cluster.spawn(
                f"tail -f {node.name}",
                [binary("chatctl"), "--socket", str(node.socket), "tail", "-f", "-n", "1"],
            )
            for node in (alice, bob)
        }
        for name, tail in tails.items():  # each is following once it has shown the last one
            wait_until(partial(getattr, tail, "stdout_lines"), DEFAULT_TIMEOUT, f"tail -f {name}")
            assert tail.stdout_lines[0].endswith(f"alice: {sent['message']}")

        assert chatctl(bob.socket, "leave").returncode == 0
        assert tails["bob"].wait_exit() == 0
        assert tails["bob"].stderr_lines == ["-- node left"]
        assert bob.wait_exit() == 0

        alice.kill()  # SIGKILL: no goodbye
        assert tails["alice"].wait_exit() == 74
        assert tails["alice"].stderr_lines == [
            f"chatctl: chatd at {alice.socket} closed the connection"
        ]


def test_every_command_has_version() -> None:
    for command in ("chatd", "chatctl", "chat-director"):
        result = subprocess.run(
            [binary(command), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        assert (result.returncode, result.stdout) == (0, f"{command} {version('chat')}\n")
