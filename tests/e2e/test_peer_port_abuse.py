"""Strangers on a node's peer port, against real processes: connections that never finish
the TLS handshake and websocket upgrade, or stop halfway through, are bounded in number
(the cap on unauthenticated connections) and in time (the handshake deadline, counted from
the TCP accept); a plaintext upgrade is answered 426 and closed at once; meanwhile the
discussion goes on and an honest node can still join.

File descriptors are counted in ``/proc/<pid>/fd`` of alice, the coordinator under attack.
The nodes run the default profile: the deadline is 5 s, so each test waits that long once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from attrs import define

from chat_testing.control import history, send, status
from chat_testing.process import stop
from chat_testing.processes import (
    Cluster,
    Director,
    Node,
    on_each,
    start_alice_and_bob,
    wait_for_members,
)
from chat_testing.waiting import DEFAULT_TIMEOUT, overall_deadline, wait_until
from chatd.config import LAN
from chatd.peer_port import REFUSED_PLAINTEXT, stalled_reason

pytestmark = pytest.mark.e2e

MARKER = "heron-flint-e2e-51ab"
CAP = LAN.max_unauthenticated_peers
DEADLINE = LAN.handshake_timeout
# Descriptors alice may open besides the capped ones meanwhile (links, director calls, a
# control connection per chatctl).
MARGIN = 24
# How late, past the deadline, a connection may be closed on a loaded 2-core machine.
SLACK = 10.0
CAP_REASON = f"over the cap of {CAP} unauthenticated connections"
STALL_REASON = stalled_reason(DEADLINE, tls=True)
# The first bytes of a TLS ClientHello whose record announces 512 bytes: the node waits for
# the rest of the record, which never comes.
HALF_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


@define
class Setup:
    root: Path
    cluster: Cluster
    director: Director
    alice: Node  # the coordinator, whose peer port is attacked
    bob: Node

    @property
    def port(self) -> int:
        port = urlsplit(str(status(self.alice.socket)["address"])).port
        assert port is not None
        return port


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("peerport")
    with Cluster(root) as cluster:
        with overall_deadline(40, "starting the discussion"):
            director = cluster.start_director()
            alice, bob = start_alice_and_bob(cluster, director.url)
        yield Setup(root, cluster, director, alice, bob)


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    with overall_deadline(90):
        yield


def check_flow(nodes: list[Node], label: str) -> None:
    """A message from each node reaches every other: the discussion still works."""
    ids = {send(n.socket, f"{MARKER} {label} from {n.name}")["id"] for n in nodes}
    wait_until(
        lambda: all(ids <= {m["id"] for m in h} for h in on_each(nodes, history)),
        DEFAULT_TIMEOUT,
        f"messages to flow between {', '.join(n.name for n in nodes)} ({label})",
    )


def descriptors(node: Node) -> int:
    return len(os.listdir(f"/proc/{node.pid}/fd"))


def refused(node: Node, reason: str) -> int:
    """How many connections ``node`` has reported closing for ``reason`` (summed counts)."""
    events = node.find_events("peer.connections_refused", reason=reason)
    for event in events:
        assert event["level"] == "warning" and isinstance(event["count"], int), event
    return sum(e["count"] for e in events)


class Strangers:
    """Raw TCP connections to a peer port, opened from the test, closed on exit."""

    def __init__(self, port: int, count: int, first: bytes = b"") -> None:
        self.socks: list[socket.socket] = []
        self.closed: dict[int, float] = {}  # index → when the node was seen closing it
        try:
            for _ in range(count):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                self.socks.append(sock)
                if first:
                    sock.sendall(first)
                sock.setblocking(False)
        except BaseException:
            self.close()
            raise
        self.opened = time.monotonic()

    def __enter__(self) -> Strangers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for sock in self.socks:
            sock.close()

    def poll(self) -> int:
        """How many the node has closed (seen as end of file or reset), so far."""
        for i, sock in enumerate(self.socks):
            if i not in self.closed and _closed_by_peer(sock):
                self.closed[i] = time.monotonic()
        return len(self.closed)

    def send_to_open(self, data: bytes) -> None:
        for i, sock in enumerate(self.socks):
            if i not in self.closed:
                # Closed meanwhile: the next poll sees it.
                with contextlib.suppress(OSError):
                    sock.send(data)


def _closed_by_peer(sock: socket.socket) -> bool:
    try:
        while True:
            if not sock.recv(4096):
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.slow
def test_silent_connections_are_capped_and_closed_at_the_deadline(setup: Setup) -> None:
    alice, bob = setup.alice, setup.bob
    baseline = descriptors(alice)
    capped, stalled = refused(alice, CAP_REASON), refused(alice, STALL_REASON)
    total = 300
    peak = baseline

    def watch() -> int:
        nonlocal peak
        peak = max(peak, descriptors(alice))
        return strangers.poll()

    with Strangers(setup.port, total) as strangers:
        # Past the cap, each is closed at once, well before the deadline.
        wait_until(
            lambda: watch() >= total - CAP,
            DEADLINE / 2,
            f"alice to close the connections over the cap of {CAP} at once",
        )
        # Meanwhile authenticated links are untouched: the discussion goes on...
        check_flow([alice, bob], "under a connection flood")
        # ...and an honest node joins (dialing again while the slots are taken).
        carol = setup.cluster.spawn_node("carol", setup.director.url).wait_ready()
        # Every connection is closed by the deadline (plus scheduling slack), not later.
        wait_until(
            lambda: watch() == total,
            DEADLINE + SLACK,
            f"alice to close all {total} silent connections by the handshake deadline",
        )
        held = max(strangers.closed.values()) - strangers.opened
        assert held < DEADLINE + SLACK, held
        assert peak <= baseline + CAP + MARGIN, (peak, baseline)

    wait_for_members([alice, bob, carol])
    check_flow([alice, bob, carol], "after a connection flood")
    # One log line per interval with a count, not one per connection; all are counted.
    wait_until(
        lambda: (
            refused(alice, CAP_REASON) - capped + refused(alice, STALL_REASON) - stalled >= total
        ),
        DEFAULT_TIMEOUT,
        "alice to report every refused connection",
    )
    assert refused(alice, CAP_REASON) - capped >= total - CAP
    lines = alice.find_events("peer.connections_refused")
    assert len(lines) < 20, f"{len(lines)} lines for {total} connections"
    wait_until(
        lambda: descriptors(alice) <= baseline + 8,
        DEFAULT_TIMEOUT,
        "alice's descriptors to come back to what she held before",
    )
    assert alice.alive and bob.alive
    assert stop(carol) == 0, carol.describe()
    wait_for_members([alice, bob])


@pytest.mark.slow
def test_half_sent_tls_hellos_are_closed_at_the_deadline(setup: Setup) -> None:
    alice, bob = setup.alice, setup.bob
    stalled = refused(alice, STALL_REASON)
    # The start of a TLS record, never its end: half stop there, half keep trickling
    # bytes into it (activity does not extend the deadline).
    count = CAP // 4
    with (
        Strangers(setup.port, count, HALF_HELLO) as stopped,
        Strangers(setup.port, count, HALF_HELLO) as trickling,
    ):

        def closed() -> bool:
            trickling.send_to_open(b"\x00" * 8)
            return stopped.poll() + trickling.poll() == 2 * count

        wait_until(
            closed,
            DEADLINE + SLACK,
            f"alice to close {2 * count} unfinished upgrades",
            interval=0.25,
        )
        when = [t - stopped.opened for t in stopped.closed.values()]
        when += [t - trickling.opened for t in trickling.closed.values()]
        # Under the cap: each is held until its deadline, then closed.
        assert min(when) >= DEADLINE - 0.5, sorted(when)[:5]
        assert max(when) < DEADLINE + SLACK, sorted(when)[-5:]
    wait_until(
        lambda: refused(alice, STALL_REASON) - stalled >= 2 * count,
        DEFAULT_TIMEOUT,
        "alice to report the unfinished upgrades",
    )
    assert alice.alive
    check_flow([alice, bob], "after half-sent upgrades")


@pytest.mark.slow
def test_plaintext_upgrades_are_answered_426_and_closed_at_once(setup: Setup) -> None:
    """A websocket upgrade without TLS, whole or half sent, is not held until the deadline:
    the node answers that it speaks only TLS and closes it."""
    alice = setup.alice
    before = refused(alice, REFUSED_PLAINTEXT)
    half = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    count = CAP // 4
    with Strangers(setup.port, count, half) as strangers:
        wait_until(
            lambda: strangers.poll() == count,
            DEADLINE / 2,
            f"alice to close {count} plaintext upgrades at once",
        )
        held = max(strangers.closed.values()) - strangers.opened
        assert held < DEADLINE / 2, held
    wait_until(
        lambda: refused(alice, REFUSED_PLAINTEXT) - before >= count,
        DEFAULT_TIMEOUT,
        "alice to report the plaintext connections",
    )
    with socket.create_connection(("127.0.0.1", setup.port), timeout=5) as sock:
        sock.sendall(half + b"\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 426 ")
    assert alice.alive


def test_garbage_then_a_reset_does_not_stop_the_node(setup: Setup) -> None:
    # Not HTTP: trio-websocket answers 400, and a reset meanwhile made that answer raise
    # in a task of the listener's, which stopped the node.
    alice, bob = setup.alice, setup.bob
    linger_reset = struct.pack("ii", 1, 0)
    port = setup.port
    for i in range(300):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            stopped = f"alice stopped after {i} connections\n{alice.describe()}"
            raise AssertionError(stopped) from None
        with sock:
            sock.sendall(b"\x16\x03\x01 not http\r\n\r\n" * 50)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_reset)
            if i % 3:
                _closed_by_peer_blocking(sock, 0.002 * (i % 5))
    check_flow([alice, bob], "after garbage and resets")
    assert alice.alive


def _closed_by_peer_blocking(sock: socket.socket, seconds: float) -> None:
    """Give the node ``seconds`` to answer before the reset (varies the interleaving)."""
    sock.settimeout(seconds)
    with contextlib.suppress(OSError):
        sock.recv(4096)
