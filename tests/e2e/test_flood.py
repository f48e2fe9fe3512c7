"""Flood control with the real processes (issue 7): a user over the limit gets a clear error
at their own node (``rate-limited``, chatctl exit 19); what was accepted reaches everyone."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_testing.control import ControlClient, chatctl, history
from chat_testing.processes import Cluster
from chat_testing.waiting import DEFAULT_TIMEOUT, overall_deadline, wait_until

pytestmark = pytest.mark.e2e

LIMITS = ["--flood-rate", "2", "--flood-burst", "5"]


def test_a_user_over_the_flood_limit_is_told_and_nothing_is_lost(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster, overall_deadline(60):
        director = cluster.start_director()
        alice = cluster.spawn_node("alice", director.url, extra=LIMITS).wait_ready()
        bob = cluster.spawn_node("bob", director.url, extra=LIMITS).wait_ready()
        wait_until(
            lambda: len(history(bob.socket)) == 0 and bob.find_events("join.completed"),
            DEFAULT_TIMEOUT,
            "bob to join",
        )
        answers = []
        with ControlClient(alice.socket) as client:
            for i in range(8):
                answers.append(client.request("send", text=f"flood {i}"))
        accepted = [a["message"]["id"] for a in answers if a["ok"]]
        refused = [a["error"] for a in answers if not a["ok"]]
        assert 5 <= len(accepted) < 8  # the burst, perhaps a token more; never all
        assert {e["code"] for e in refused} == {"rate-limited"}
        over = chatctl(alice.socket, "send", "one more")
        if over.returncode != 0:  # unless a token came back meanwhile
            assert over.returncode == 19
            assert "flood limit" in over.stderr and over.stderr.count("\n") == 1
        # The limit refills: a user who waits a moment is heard again.
        wait_until(
            lambda: chatctl(alice.socket, "send", "after a pause").returncode == 0,
            DEFAULT_TIMEOUT,
            "a send to be accepted again",
        )
        wait_until(
            lambda: set(accepted) <= {m["id"] for m in history(bob.socket)},
            DEFAULT_TIMEOUT,
            "bob to have every accepted message",
        )
        assert alice.find_events("control.refused", code="rate-limited")
