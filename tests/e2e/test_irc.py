"""The IRC gateway among real processes, driven by a third-party IRC client library (jaraco's
``irc``, its sync Reactor in a thread): register, join #chat, history with server-time,
talk both ways, presence as JOIN/QUIT/NICK, two clients at once, a wrong password, garbage.

alice runs ``--irc 127.0.0.1:0`` (a free port; ``chatctl status`` says which, with the
password); bob (and later carol) are plain nodes.
"""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import irc.client  # type: ignore[import-untyped]
import pytest

from chat_testing.control import chatctl, history, send, status
from chat_testing.process import binary, stop
from chat_testing.processes import Cluster, Director, Node, wait_for_members
from chat_testing.waiting import DEFAULT_TIMEOUT, overall_deadline, wait_until

pytestmark = pytest.mark.e2e

MARKER = "quokka-lantern-irc-31d7"


class IrcClient:
    """A connection of the ``irc`` library, its reactor run by a thread; every event kept."""

    def __init__(self, address: str, password: str | None, nick: str = "someone") -> None:
        host, port = address.rsplit(":", 1)
        self.reactor = irc.client.Reactor()
        self._lock = threading.Lock()
        self._events: list[irc.client.Event] = []
        self.reactor.add_global_handler("all_events", self._record, -10)
        self.conn = self.reactor.server().connect(host, int(port), nick, password=password)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _record(self, connection: Any, event: irc.client.Event) -> None:
        with self._lock:
            self._events.append(event)

    def _run(self) -> None:
        while not self._halt.is_set():
            self.reactor.process_once(0.05)

    def events(self, kind: str | None = None) -> list[irc.client.Event]:
        with self._lock:
            return [e for e in self._events if kind is None or e.type == kind]

    def wait(
        self, kind: str, match: Callable[[irc.client.Event], bool] = lambda e: True
    ) -> irc.client.Event:
        def found() -> irc.client.Event | None:
            return next((e for e in self.events(kind) if match(e)), None)

        return wait_until(found, DEFAULT_TIMEOUT, f"an IRC {kind} event")

    def texts(self, kind: str = "pubmsg") -> list[tuple[str, str]]:
        """(nick, text) of every channel message (or action) so far."""
        return [(e.source.nick, e.arguments[0]) for e in self.events(kind)]

    def close(self) -> None:
        self._halt.set()
        self._thread.join(5)
        self.conn.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path) as c, overall_deadline(90, "the IRC test"):
        yield c


def director_url(cluster: Cluster) -> str:
    (director,) = [p for p in cluster.processes if isinstance(p, Director)]
    return director.url


def start(cluster: Cluster, *irc_options: str) -> tuple[Node, Node, dict[str, str]]:
    """alice (with the gateway, the coordinator) and bob; the gateway's address and password."""
    director = cluster.start_director()
    extra = ["--priority", "10", "--irc", "127.0.0.1:0", *irc_options]
    alice = cluster.spawn_node("alice", director.url, extra=extra).wait_ready()
    wait_until(lambda: status(alice.socket)["role"] == "coordinator", DEFAULT_TIMEOUT, "alice")
    bob = cluster.spawn_node("bob", director.url).wait_ready()
    wait_for_members([alice, bob])
    gateway = status(alice.socket)["irc"]
    assert gateway["address"].startswith("127.0.0.1:") and len(gateway["password"]) >= 16
    return alice, bob, gateway


def test_an_irc_client_takes_part_in_the_discussion(cluster: Cluster) -> None:
    alice, bob, gateway = start(cluster)
    before = send(bob.socket, f"{MARKER} before the client came")
    client = IrcClient(gateway["address"], gateway["password"])
    try:
        welcome = client.wait("welcome")
        assert welcome.target == "alice"  # the nick is the node's name, whatever was asked
        client.conn.cap("REQ", "server-time")
        client.wait("cap", lambda e: e.arguments[:1] == ["ACK"])
        client.conn.join("#chat")
        names = client.wait("namreply")
        assert sorted(names.arguments[-1].split()) == ["alice", "bob"]

        # History, with the time each message was sent.
        replayed = client.wait("pubmsg", lambda e: MARKER in e.arguments[0])
        assert (replayed.source.nick, replayed.arguments[0]) == ("bob", before["message"])
        tags = {t["key"]: t["value"] for t in replayed.tags or []}
        assert tags["time"][:19] == before["timestamp"][:19]

        # The client talks: the discussion sees it as alice's, on every node.
        client.conn.privmsg("#chat", f"{MARKER} hello from irc")
        client.conn.action("#chat", f"{MARKER} waves")
        wait_until(
            lambda: (
                [m["message"] for m in history(bob.socket) if m["node-id"] == alice.node_id]
                == [f"{MARKER} hello from irc", f"/me {MARKER} waves"]
            ),
            DEFAULT_TIMEOUT,
            "bob to hold the IRC client's messages",
        )

        # Another member talks, and this node's user through chatctl: both reach the client.
        send(bob.socket, f"{MARKER} hi irc")
        send(alice.socket, f"{MARKER} typed in chatctl")
        client.wait("pubmsg", lambda e: e.arguments[0] == f"{MARKER} hi irc")
        mine = client.wait("pubmsg", lambda e: e.arguments[0] == f"{MARKER} typed in chatctl")
        assert mine.source.nick == "alice"
        # Its own messages are not echoed back (no echo-message requested).
        assert f"{MARKER} hello from irc" not in [text for _, text in client.texts()]

        # A second client at once sees what the first one says.
        second = IrcClient(gateway["address"], gateway["password"], nick="alice")
        try:
            second.wait("welcome")
            second.conn.join("#chat")
            second.wait("endofnames")
            client.conn.privmsg("#chat", f"{MARKER} to both")
            seen = second.wait("pubmsg", lambda e: e.arguments[0] == f"{MARKER} to both")
            assert seen.source.nick == "alice"
        finally:
            second.close()

        # Presence: carol joins, bob renames himself, carol leaves.
        carol = cluster.spawn_node("carol", director_url(cluster)).wait_ready()
        client.wait("join", lambda e: e.source.nick == "carol")
        assert chatctl(bob.socket, "nick", "robert").returncode == 0
        client.wait("nick", lambda e: (e.source.nick, e.target) == ("bob", "robert"))
        assert stop(carol) == 0
        left = client.wait("quit", lambda e: e.source.nick == "carol")
        assert left.arguments == ["left"]

        # The client renames the node: every member sees the new name.
        client.conn.nick("alicia")
        client.wait("nick", lambda e: (e.source.nick, e.target) == ("alice", "alicia"))
        wait_until(
            lambda: (
                {m["node-id"]: m["name"] for m in status(bob.socket)["members"]}.get(alice.node_id)
                == "alicia"
            ),
            DEFAULT_TIMEOUT,
            "bob to see alice renamed",
        )

        # Garbage is answered with an error; the gateway and the node carry on.
        client.conn.socket.send(b"\xff\xfe not utf-8\r\nFROBNICATE now\r\n")
        client.wait("unknowncommand")
        client.conn.privmsg("#chat", f"{MARKER} still here")
        wait_until(
            lambda: f"{MARKER} still here" in [m["message"] for m in history(bob.socket)],
            DEFAULT_TIMEOUT,
            "the message after the garbage",
        )
        raw = [e.arguments[0] for e in client.events("all_raw_messages")]
        assert any(" 400 " in line and "not UTF-8" in line for line in raw)
    finally:
        client.close()
    # No process logged a chat text, nor the password.
    for line in cluster.log_lines():
        assert MARKER not in line and gateway["password"] not in line, line


@pytest.mark.slow
def test_a_wrong_password_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    password_file = tmp_path / "irc-password"
    password_file.write_text("correct-horse-battery\n")
    alice, _, gateway = start(cluster, "--irc-password-file", str(password_file))
    assert gateway["password"] == "correct-horse-battery"
    for password in ("not-the-password", None):
        client = IrcClient(gateway["address"], password)
        try:
            refused = client.wait("passwdmismatch")
            assert refused.type == "passwdmismatch"
            client.wait("disconnect")
            assert not client.events("welcome")
        finally:
            client.close()
    alice.wait_event("irc.refused", reason="wrong password")
    alice.wait_event("irc.refused", reason="no password")
    assert status(alice.socket)["role"] == "coordinator"  # the node is unharmed
    assert not [line for line in cluster.log_lines() if "not-the-password" in line]
    # A client with the right password is told when the node leaves.
    client = IrcClient(gateway["address"], "correct-horse-battery")
    try:
        client.wait("welcome")
        assert stop(alice) == 0
        error = client.wait("error")
        assert error.target == "Closing link: the node left the discussion"
    finally:
        client.close()


@pytest.mark.slow
def test_irc_options_are_checked(tmp_path: Path) -> None:
    sock = ["--socket", str(tmp_path / "c.sock")]
    base = [binary("chatd"), "--director", "http://127.0.0.1:9", "--insecure", *sock]
    cases = {
        "is not a loopback address": ["--irc", "192.0.2.1:6667"],
        "give HOST:PORT": ["--irc", "127.0.0.1"],
        "need --irc": ["--irc-allow-remote"],
        "must be a password": ["--irc", "127.0.0.1:0", "--irc-password-file", "/dev/null"],
        "No such file": ["--irc", "127.0.0.1:0", "--irc-password-file", "/nonexistent"],
    }
    for expected, extra in cases.items():
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2 and expected in done.stderr, (extra, done.stderr)
    # A port already taken: exit 3, as for the peer port, before the director is asked.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [*base, "--irc", f"127.0.0.1:{port}"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, done.stderr
    assert f"cannot listen for IRC clients on 127.0.0.1:{port}: address already in use" in (
        done.stderr
    )
