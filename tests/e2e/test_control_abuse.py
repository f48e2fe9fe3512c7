"""Clients abusing the control socket of a real chatd: it stays up and keeps serving others.

A ``tail --follow`` that never reads (``chatctl tail -f | sleep 10``), a client hanging up
with answers unread, a burst of connections while the node is busy, hundreds of clients
each holding half a request line, more clients or followers than the node serves at once.
One node (alone in its discussion) is enough: all of this is local to its control socket.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from attrs import define

from chat_testing.control import ControlClient, chatctl, status
from chat_testing.processes import Cluster, Director, Node
from chat_testing.waiting import DEFAULT_TIMEOUT, overall_deadline, wait_until
from chatd.config import LAN

pytestmark = pytest.mark.e2e

MARKER = "quokka-slate-e2e-71fe"
# About 3 KiB of text: a long message, well under the 4096-byte limit.
TEXT = MARKER + " " + "w" * 3000


@define
class Setup:
    root: Path
    cluster: Cluster
    director: Director
    alice: Node


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("abuse")
    with Cluster(root) as cluster:
        with overall_deadline(40, "starting the discussion"):
            director = cluster.start_director(insecure=True)
            # These tests pour thousands of messages in: lift the user's flood limit.
            lifted = ["--flood-rate", "1000000", "--flood-burst", "1000000"]
            alice = cluster.spawn_node("alice", director.url, extra=lifted).wait_ready()
            wait_until(
                lambda: status(alice.socket)["role"] == "coordinator",
                DEFAULT_TIMEOUT,
                "alice to start the discussion",
            )
        yield Setup(root, cluster, director, alice)


@pytest.fixture(autouse=True)
def deadline(setup: Setup) -> Iterator[None]:
    with overall_deadline(90):
        yield
    # Whatever a test did, the node is still up and serving.
    assert setup.alice.alive, setup.alice.describe()
    assert status(setup.alice.socket)["node-id"] == setup.alice.node_id


def raw_connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(DEFAULT_TIMEOUT)
    sock.connect(str(path))
    return sock


def read_answer(sock: socket.socket) -> dict[str, Any]:
    """One JSON line (the sockets here get at most one answer before they are closed)."""
    data = b""
    while b"\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed; got {data!r}")
        data += chunk
    value = json.loads(data.split(b"\n", 1)[0])
    assert isinstance(value, dict)
    return value


def start_follower(path: Path) -> socket.socket:
    """A ``tail --follow`` client that reads the ok and then never reads again."""
    sock = raw_connect(path)
    sock.sendall(b'{"op": "tail", "follow": true, "last": 0}\n')
    assert read_answer(sock) == {"ok": True}
    return sock


def send_many(client: ControlClient, count: int) -> None:
    for _ in range(count):
        answer = client.request("send", text=TEXT)
        assert answer["ok"] is True, answer


def count(node: Node, event: str) -> int:
    return len(node.find_events(event))


class Follower:
    """A follower that reads everything it is sent, without blocking, when asked."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.setblocking(False)
        self.buffer = b""
        self.seen: set[str] = set()
        self.closed = False  # by the node

    def drain(self) -> set[str]:
        """Read what has arrived; the ids of every message seen so far."""
        while not self.closed:
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            except ConnectionResetError:
                chunk = b""
            self.closed = not chunk
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        self.seen.update(json.loads(line)["id"] for line in lines)
        return self.seen


# A slow tail reader --------------------------------------------------------------------------


def test_tail_follower_hanging_up_with_unread_messages(setup: Setup) -> None:
    """``chatctl tail -f | sleep 10``: the pipe's reader exits, then chatctl, with the
    node blocked writing to it. The write fails; that ends the follower, not the node."""
    alice = setup.alice
    failed = count(alice, "control.failed")
    follower = start_follower(alice.socket)
    with ControlClient(alice.socket) as client:
        # Enough to fill both socket buffers: the node is now blocked writing to it.
        send_many(client, 300)
        follower.close()
        send_many(client, 50)
        assert client.request("status")["ok"] is True
    assert alice.alive, alice.describe()
    assert count(alice, "control.failed") == failed  # a hang-up is no error


@pytest.mark.slow
def test_tail_follower_that_never_reads_is_cut_off(setup: Setup) -> None:
    """A follower whose queue overflows is dropped (logged once); the node goes on."""
    alice = setup.alice
    dropped = count(alice, "tail.dropped")
    with ExitStack() as stack:
        silent = Follower(stack.enter_context(start_follower(alice.socket)))
        reader = Follower(stack.enter_context(start_follower(alice.socket)))
        client = stack.enter_context(ControlClient(alice.socket))
        # The other follower reads everything, so only the silent one falls behind.
        limit = LAN.tail_queue_messages + 2000
        sent = 0
        while count(alice, "tail.dropped") < dropped + 1:
            assert sent < limit, f"no tail.dropped after {sent} messages\n{alice.describe()}"
            send_many(client, 250)
            sent += 250
            reader.drain()
        assert not reader.closed
        # Cut off: the node closes the connection at once. It does not go on sending the
        # backlog once the client reads again: only what was in the socket buffers arrives.
        wait_until(
            lambda: silent.drain() is not None and silent.closed,
            DEFAULT_TIMEOUT,
            "the node to close the silent follower",
        )
        assert len(silent.seen) < LAN.tail_queue_messages // 2, len(silent.seen)
        assert not reader.closed
        assert count(alice, "tail.dropped") == dropped + 1  # once
        assert alice.find_events("tail.dropped")[-1]["level"] == "warning"
        # The reading follower is still served.
        last = client.request("send", text=f"{MARKER} after the drop")["message"]["id"]
        wait_until(
            lambda: last in reader.drain(), DEFAULT_TIMEOUT, "the reading follower to get it"
        )
        assert alice.alive
        assert client.request("status")["ok"] is True


# Many clients ----------------------------------------------------------------------------------


def read_nonblocking(sock: socket.socket) -> tuple[bytes, bool]:
    """What has arrived on a non-blocking socket, and whether the node has closed it."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


@pytest.mark.slow
def test_a_burst_of_200_clients_each_holding_half_a_line(setup: Setup) -> None:
    """They all get in (the backlog), do not stop anyone else, and are dropped after the
    line deadline with an answer saying why."""
    alice = setup.alice
    timeouts = count(alice, "control.timeout")
    with ExitStack() as stack:
        clients: list[socket.socket] = []
        # While the node cannot accept, every connection waits in the listen backlog.
        alice.signal(signal.SIGSTOP)
        try:
            for _ in range(200):
                sock = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
                sock.setblocking(False)
                sock.connect(str(alice.socket))  # EAGAIN if the backlog is full
                sock.sendall(b'{"op": "sta')
                clients.append(sock)
        finally:
            alice.signal(signal.SIGCONT)
        started = time.monotonic()
        # Another client is served meanwhile.
        result = chatctl(alice.socket, "status", "--json", timeout=5)
        assert result.returncode == 0, result
        assert json.loads(result.stdout)["node-id"] == alice.node_id
        assert time.monotonic() - started < LAN.control_line_timeout
        assert not any(read_nonblocking(sock)[1] for sock in clients)  # still hanging

        answers: dict[int, bytes] = {}
        received: dict[int, bytes] = {}  # an answer may come in one poll, the close in the next

        def all_dropped() -> bool:
            for i, sock in enumerate(clients):
                if i not in answers:
                    data, closed = read_nonblocking(sock)
                    received[i] = received.get(i, b"") + data
                    if closed:
                        assert received[i].endswith(b"\n"), received[i]
                        answers[i] = received[i]
            return len(answers) == len(clients)

        wait_until(
            all_dropped,
            LAN.control_line_timeout + DEFAULT_TIMEOUT,
            "the node to drop every half-line client",
        )
    assert time.monotonic() - started >= LAN.control_line_timeout - 1
    for data in answers.values():
        answer = json.loads(data)
        assert answer["ok"] is False and answer["error"]["code"] == "bad-request", answer
        assert "10 s" in answer["error"]["message"]
    events = alice.find_events("control.timeout")
    assert len(events) > timeouts
    assert all(e["level"] == "warning" for e in events)
    # Rate-limited: 200 timeouts at once do not make 200 lines.
    assert len(events) - timeouts < len(clients)


def serve_clients(path: Path, stack: ExitStack, n: int) -> list[socket.socket]:
    """``n`` connections, each answered once (so the node is surely serving it)."""
    clients = []
    for _ in range(n):
        sock = stack.enter_context(raw_connect(path))
        sock.sendall(b'{"op": "who"}\n')
        assert read_answer(sock)["ok"] is True
        clients.append(sock)
    return clients


def test_one_client_over_the_cap_is_told_busy(setup: Setup) -> None:
    alice = setup.alice
    cap = LAN.control_clients_max
    busy = count(alice, "control.busy")
    with ExitStack() as stack:
        clients = serve_clients(alice.socket, stack, cap)
        result = chatctl(alice.socket, "status", timeout=5)
        assert result.returncode == 18, result  # 10 + the busy code
        assert result.stderr == f"chatctl: already serving {cap} clients; try again later (busy)\n"
        event = alice.wait_event("control.busy")
        assert event["level"] == "warning"
        assert count(alice, "control.busy") > busy
        # One leaves: there is room again.
        clients.pop().close()
        wait_until(
            lambda: chatctl(alice.socket, "status", timeout=5).returncode == 0,
            DEFAULT_TIMEOUT,
            "status to be served again",
        )
        # Those connected all along are still served.
        clients[0].sendall(b'{"op": "status"}\n')
        assert read_answer(clients[0])["ok"] is True


def test_one_follower_over_the_cap_is_told_busy(setup: Setup) -> None:
    alice = setup.alice
    cap = LAN.tail_followers_max
    with ExitStack() as stack:
        followers = [stack.enter_context(start_follower(alice.socket)) for _ in range(cap)]
        conn = stack.enter_context(raw_connect(alice.socket))
        conn.sendall(b'{"op": "tail", "follow": true}\n')
        answer = read_answer(conn)
        assert answer["ok"] is False and answer["error"]["code"] == "busy", answer
        # The connection itself goes on.
        conn.sendall(b'{"op": "who"}\n')
        assert read_answer(conn)["ok"] is True
        # A tail without follow is not limited.
        result = chatctl(alice.socket, "tail", "-n", "1")
        assert result.returncode == 0, result
        result = chatctl(alice.socket, "tail", "-f", timeout=5)
        assert result.returncode == 18, result
        # One hangs up: there is room again.
        followers.pop().close()
        wait_until(
            lambda: stack.enter_context(start_follower(alice.socket)),
            DEFAULT_TIMEOUT,
            "a new follower to be let in",
        )
