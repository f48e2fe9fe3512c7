"""A real chatd as systemd sees it: READY=1, WATCHDOG=1 pings and STATUS= lines that
follow the node's role and members, then STOPPING=1, on a datagram socket standing in
for ``$NOTIFY_SOCKET`` (tests/systemd checks the same under a real systemd)."""

from __future__ import annotations

import os
import socket
import time
from itertools import pairwise
from pathlib import Path

import pytest

from chat_testing.process import stop
from chat_testing.processes import Cluster, wait_for_members
from chat_testing.waiting import DEFAULT_TIMEOUT

pytestmark = pytest.mark.e2e


class Notifications:
    """Every datagram received so far on a bound abstract socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.seen: list[str] = []

    def until(self, wanted: str, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
        """Read until ``wanted`` arrives (or was seen); fail past ``timeout``."""
        deadline = time.monotonic() + timeout
        while wanted not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {wanted!r} within {timeout:g}s; got {self.seen}")
            self.sock.settimeout(left)
            try:
                self.seen.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        return self.seen


@pytest.mark.slow
def test_chatd_reports_readiness_watchdog_and_status(tmp_path: Path) -> None:
    name = f"chatd-notify-test-{os.getpid()}"
    with (
        Cluster(tmp_path) as cluster,
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server,
    ):
        server.bind("\0" + name)
        director = cluster.start_director()
        cluster.env.update(NOTIFY_SOCKET="@" + name, WATCHDOG_USEC="2000000")
        alice = cluster.spawn_node("alice", director.url, extra=["--priority", "10"])
        del cluster.env["NOTIFY_SOCKET"], cluster.env["WATCHDOG_USEC"]  # for alice only
        notes = Notifications(server)
        notes.until("STATUS=alice: coordinator, 1 member, term 1")
        assert notes.seen[0] == "READY=1", notes.seen  # nothing before readiness
        assert "WATCHDOG=1" in notes.seen
        bob = cluster.spawn_node("bob", director.url).wait_ready()
        wait_for_members([alice.wait_ready(), bob])
        notes.until("STATUS=alice: coordinator, 2 members, term 1")
        assert stop(alice) == 0
        notes.until("STOPPING=1")
        statuses = [s for s in notes.seen if s.startswith("STATUS=")]
        # Sent when it changes, not at every poll.
        assert all(a != b for a, b in pairwise(statuses)), statuses
        assert set(notes.seen) <= {"READY=1", "WATCHDOG=1", "STOPPING=1", *statuses}
