"""Presence and names among real processes: ``chatctl tail --events``, ``nick``, ``who``.

Three nodes; a ``chatctl tail -f --events --json`` on each. alice (highest priority, so she
stays the coordinator) sees bob and carol join; bob renames himself and every node sees
it, and his next message carries the new name; carol leaves cleanly (``left``); bob is
killed (``timed-out``: the LAN profile's member timeout is 3 s).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chat_testing.control import chatctl, send, status, who
from chat_testing.process import Process, binary, stop
from chat_testing.processes import Cluster, Node, wait_for_members
from chat_testing.waiting import DEFAULT_TIMEOUT, overall_deadline, wait_until

pytestmark = pytest.mark.e2e

MARKER = "okapi-vellum-presence-5c2e"


def follow(cluster: Cluster, node: Node, first: dict[str, Any]) -> Process:
    """``chatctl tail -f --events --json -n 1`` on ``node``, stopped with the cluster;
    returns once it has shown ``first`` (the last message): it is subscribed from then on."""
    argv = [binary("chatctl"), "--socket", str(node.socket), "tail", "-f", "--events", "--json"]
    tail = cluster.spawn(f"tail[{node.name}]", [*argv, "-n", "1"])
    wait_until(lambda: message_in(tail, first["id"]), DEFAULT_TIMEOUT, f"{tail.label} to start")
    return tail


def lines(tail: Process) -> list[dict[str, Any]]:
    return [json.loads(row) for row in tail.stdout_lines if row.strip()]


def message_in(tail: Process, message_id: str) -> dict[str, Any] | None:
    for row in lines(tail):
        if row["kind"] == "message" and row["message"]["id"] == message_id:
            return dict(row["message"])
    return None


def presence(tail: Process) -> list[tuple[str, str]]:
    """(event, node-id) of every presence line so far."""
    return [
        (row["presence"]["event"], row["presence"]["node-id"])
        for row in lines(tail)
        if row["kind"] == "presence"
    ]


def wait_presence(tail: Process, event: str, node: Node) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        for row in lines(tail):
            body = row.get("presence", {})
            if body.get("event") == event and body.get("node-id") == node.node_id:
                return dict(body)
        return None

    return wait_until(found, DEFAULT_TIMEOUT, f"{tail.label}: {event} {node.name}")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path) as cluster:
        yield cluster


def test_join_rename_leave_and_timeout_are_seen(cluster: Cluster) -> None:
    with overall_deadline(90, "the presence walk-through"):
        director = cluster.start_director()
        alice = cluster.spawn_node("alice", director.url, extra=["--priority", "10"]).wait_ready()
        wait_until(
            lambda: status(alice.socket)["role"] == "coordinator", DEFAULT_TIMEOUT, "alice leads"
        )
        first = send(alice.socket, f"{MARKER} first")
        tail_alice = follow(cluster, alice, first)
        bob = cluster.spawn_node("bob", director.url).wait_ready()
        carol = cluster.spawn_node("carol", director.url).wait_ready()
        wait_for_members([alice, bob, carol])
        joined = wait_presence(tail_alice, "joined", bob)
        assert (joined["name"], joined["display"]) == ("bob", "bob")
        assert joined["at"].endswith("Z") and joined["old-name"] is None
        wait_presence(tail_alice, "joined", carol)
        tails = [tail_alice, follow(cluster, bob, first), follow(cluster, carol, first)]

        # A rename: seen everywhere, and bob's next message is signed with the new name.
        result = chatctl(bob.socket, "nick", "--json", "bobby")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == {"name": "bobby"}
        for tail in tails:
            renamed = wait_presence(tail, "renamed", bob)
            assert (renamed["name"], renamed["old-name"]) == ("bobby", "bob")
        sent = send(bob.socket, f"{MARKER} after the rename")
        assert (sent["name"], sent["display"]) == ("bobby", "bobby")
        got = wait_until(
            lambda: message_in(tail_alice, sent["id"]), DEFAULT_TIMEOUT, "bob's message at alice"
        )
        assert (got["name"], got["display"]) == ("bobby", "bobby")
        members = {m["node-id"]: m for m in who(alice.socket)}
        assert members[bob.node_id]["display"] == "bobby"
        assert members[bob.node_id]["idle"] is not None
        assert members[carol.node_id]["idle"] is None  # carol has said nothing
        assert members[alice.node_id]["link"] == "self"
        peers = {p["node-id"]: p["name"] for p in status(alice.socket)["peers"]}
        assert peers.get(bob.node_id) == "bobby", peers  # not the name of its hello
        human = chatctl(alice.socket, "who")
        assert human.returncode == 0 and "bobby" in human.stdout, human

        # A clean leave, then a kill -9.
        assert stop(carol) == 0, carol.describe()
        left = wait_presence(tail_alice, "left", carol)
        assert left["name"] == "carol"
        bob.signal(signal.SIGKILL)
        wait_presence(tail_alice, "timed-out", bob)
        seen = presence(tail_alice)
        assert ("timed-out", carol.node_id) not in seen
        assert ("left", bob.node_id) not in seen
        # Events are not history, and no log holds a message text.
        assert all(MARKER in m["message"] for m in _history(alice))
        logs = [
            row for p in [director, *cluster.nodes] for row in (*p.stdout_lines, *p.stderr_lines)
        ]
        assert logs and not [row for row in logs if MARKER in row]


def _history(node: Node) -> list[dict[str, Any]]:
    result = chatctl(node.socket, "history", "--json")
    assert result.returncode == 0, result.stderr
    return [json.loads(row) for row in result.stdout.splitlines()]


def test_bad_names_are_refused_with_one_clear_line(cluster: Cluster) -> None:
    with overall_deadline(40, "bad names"):
        director = cluster.start_director()
        bad = cluster.spawn_node("evil\u202egnp.exe", director.url)
        assert bad.wait_exit() == 2
        assert bad.stderr_lines == [
            "chatd: --name: a name cannot contain a format character (bidi or zero-width) (U+202E)"
        ]
        alice = cluster.spawn_node("alice", director.url).wait_ready()
        wait_until(lambda: status(alice.socket)["role"] == "coordinator", DEFAULT_TIMEOUT, "")
        for name, why in [
            ("a#b", "cannot contain '#'"),
            ("x" * 33, "at most 32 characters"),
            ("tab\there", "control character"),
        ]:
            result = chatctl(alice.socket, "nick", name)
            assert result.returncode == 12, result
            assert why in result.stderr and result.stderr.endswith("(bad-request)\n"), result
        assert status(alice.socket)["name"] == "alice"
