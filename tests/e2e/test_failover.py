"""Failures among real processes: a crashed or paused coordinator, a paused member, a
director restart, two members crashing at once, a peer vanishing mid-handshake.

Each test starts its own director and nodes (``--profile lan``: heartbeat 0.25 s, failure
timeout 0.75 s, member timeout 3 s) and checks what the design promises across the failure:
one coordinator that survivors agree on (the highest ``(priority, node-id)`` alive, in a
newer term), no acknowledged message lost, identical histories once traffic stops, no error
logged and no message text in any log. Nodes get distinct ``--priority`` values so that the
winner of each election is known: the highest always ends as coordinator (one that joins a
lower coordinator takes over), which also fixes which node the coordinator tests fail.

Traffic goes through raw control-socket connections kept open (``chat_testing.traffic.Traffic``, one
message per node every 50 ms, every answer recorded); checks use the real ``chatctl``.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from chat_testing.checks import canonical_key, causal_violations
from chat_testing.control import Message, history, http_get, send, status
from chat_testing.process import stop
from chat_testing.processes import Cluster, Director, Node, on_each
from chat_testing.traffic import Traffic
from chat_testing.waiting import overall_deadline, wait_until
from chatd.config import LAN

pytestmark = pytest.mark.e2e

# Every chat text carries this; no log line of any process may contain it.
MARKER = "ocelot-basalt-failover-3c9e"
# Deadline for a failover to settle on a loaded 2-core machine (LAN profile: about 1 s).
SETTLE = 10.0
SEND_INTERVAL = 0.05


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    with overall_deadline(45):
        yield


# Helpers -------------------------------------------------------------------------------------


def start_ranked(
    cluster: Cluster, director: Director, ranked: Sequence[tuple[str, int]]
) -> list[Node]:
    """Start (name, priority) nodes at once; returns them once all agree, the highest
    coordinating (a node that joins a lower coordinator takes over: bully)."""
    started = [
        cluster.spawn_node(name, director.url, extra=["--priority", str(priority)])
        for name, priority in ranked
    ]
    nodes = [node.wait_ready() for node in started]
    agreement(nodes, coordinator=highest(nodes))
    return nodes


def priority(node: Node) -> int:
    argv = node.argv
    return int(argv[argv.index("--priority") + 1])


def highest(nodes: Sequence[Node]) -> Node:
    """The node the bully must pick: highest ``(priority, node-id)``."""
    return max(nodes, key=lambda n: (priority(n), n.node_id))


def agreement(
    nodes: Sequence[Node],
    timeout: float = SETTLE,
    coordinator: Node | None = None,
    newer_than: int = 0,
) -> list[dict[str, Any]]:
    """Statuses once every node is in, all name the same coordinator (``coordinator`` if
    given) and term (above ``newer_than``), and all list exactly ``nodes`` as members."""
    expected = {n.node_id for n in nodes}

    def agreed() -> list[dict[str, Any]] | None:
        statuses = on_each(nodes, status)
        views = {
            (s["coordinator"], s["term"], frozenset(m["node-id"] for m in s["members"]))
            for s in statuses
        }
        if len(views) != 1 or not all(s["role"] in ("coordinator", "member") for s in statuses):
            return None
        leader, term, members = next(iter(views))
        if members != expected or term <= newer_than:
            return None
        if coordinator is not None and leader != coordinator.node_id:
            return None
        roles = {s["node-id"]: s["role"] for s in statuses}
        if roles.get(leader) != "coordinator" or list(roles.values()).count("coordinator") != 1:
            return None
        return statuses

    names = ", ".join(n.name for n in nodes)
    return wait_until(agreed, timeout, f"{names} to agree on one coordinator, term and members")


def leader_of(nodes: Sequence[Node], statuses: Sequence[dict[str, Any]]) -> Node:
    (node,) = [n for n in nodes if n.node_id == statuses[0]["coordinator"]]
    return node


def settled_histories(nodes: Sequence[Node], ids: set[str]) -> list[Message]:
    """The common history once every node holds ``ids`` and all histories are identical."""

    def settled() -> list[Message] | None:
        histories = on_each(nodes, history)
        if all(ids <= {m["id"] for m in h} for h in histories) and all(
            h == histories[0] for h in histories
        ):
            return histories[0]
        return None

    names = ", ".join(n.name for n in nodes)
    messages = wait_until(settled, SETTLE, f"{names} to hold {len(ids)} messages, identically")
    check_history(messages)
    return messages


def check_history(messages: Sequence[Message]) -> None:
    ids = [m["id"] for m in messages]
    assert len(ids) == len(set(ids)), "a message appears twice"
    assert list(messages) == sorted(messages, key=canonical_key), "not in canonical order"
    assert causal_violations(messages) == []


def missing(nodes: Sequence[Node], ids: set[str]) -> dict[str, int]:
    """How many of ``ids`` each node lacks (for failure messages)."""
    return {
        n.name: len(ids - {m["id"] for m in h})
        for n, h in zip(nodes, on_each(nodes, history), strict=True)
    }


def flowing(traffic: Traffic, more: int, timeout: float = SETTLE) -> None:
    """Wait until ``more`` further sends are acknowledged."""
    target = len(traffic.acked()) + more
    wait_until(lambda: len(traffic.acked()) >= target, timeout, f"{more} more sends acknowledged")


def elections(cluster: Cluster) -> str:
    """Every process's election and director events, for failure messages."""
    names = {
        "coordinator.suspected",
        "election.started",
        "election.outvoted",
        "coordinator.elected",
        "term.changed",
        "coordinator.deposed",
        "member.failed",
        "member.dropped",
        "node.paused",
        "director.failed",
        "director.recovered",
        "director.refused",
        "join.waiting",
        "join.started",
        "join.completed",
        "discussion.started",
        "director.coordinator.registered",
        "director.node.advised",
    }
    lines = [
        f"{e.get('timestamp', '')} {p.label} {e['event']} "
        + " ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "timestamp", "level"))
        for p in cluster.processes
        for e in p.events()
        if e.get("event") in names
    ]
    return "\n".join(sorted(lines))


def check_logs(cluster: Cluster) -> None:
    """No message text in any log line; no error logged and no frame that broke a node."""
    leaked = [line for line in cluster.log_lines() if MARKER in line]
    assert leaked == [], f"message text in the logs: {leaked[:3]}"
    for process in cluster.processes:
        bad = [
            e
            for e in process.events()
            if e.get("level") in ("error", "critical") or e.get("event") == "frame.failed"
        ]
        assert bad == [], f"{process.label} logged {bad[:3]}"


# The tests -----------------------------------------------------------------------------------


def test_coordinator_killed_during_traffic(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        director = cluster.start_director()
        ranked = [("alice", 10), ("bob", 20), ("carol", 30), ("dave", 40)]
        nodes = start_ranked(cluster, director, ranked)
        before = agreement(nodes)
        old = leader_of(nodes, before)
        assert old.name == "dave"
        survivors = [n for n in nodes if n is not old]
        expected = highest(survivors)

        with Traffic(survivors, SEND_INTERVAL, MARKER) as traffic:
            flowing(traffic, 15)
            old.signal(signal.SIGKILL)
            killed_at = time.monotonic()
            old.wait_exit(5)
            after = agreement(survivors, coordinator=expected, newer_than=before[0]["term"])
            print(f"survivors agreed {time.monotonic() - killed_at:.2f}s after the SIGKILL")
            flowing(traffic, 15)  # and traffic goes on under the new coordinator
        sent = traffic.stop()

        assert expected.name == "carol" and after[0]["coordinator"] == expected.node_id
        assert after[0]["term"] > before[0]["term"]
        failures = [s for s in sent if s.error is not None]
        assert failures == [], f"{len(failures)} sends failed, first: {failures[:3]}"
        acked = set(traffic.acked())
        assert len(acked) == len(sent) >= 30
        try:
            messages = settled_histories(survivors, acked)
        except AssertionError:
            raise AssertionError(f"missing per node: {missing(survivors, acked)}") from None
        assert {m["id"] for m in messages} == acked
        assert expected.find_events("coordinator.elected")
        check_logs(cluster)


def check_one_coordinator(nodes: Sequence[Node], leader: Node, term: int, samples: int = 5) -> None:
    """Settled means settled: one coordinator, the same view, every time we look."""
    for _ in range(samples):
        statuses = on_each(nodes, status)
        roles = [s["role"] for s in statuses]
        assert roles.count("coordinator") == 1, roles
        assert {(s["coordinator"], s["term"]) for s in statuses} == {(leader.node_id, term)}
        time.sleep(0.2)  # pacing the samples


def hold_pause(
    paused: Node, others: Sequence[Node], pause: float, leader: Node, newer_than: int
) -> list[dict[str, Any]]:
    """SIGSTOP ``paused`` for ``pause`` seconds; the others must settle on ``leader`` (in a
    term above ``newer_than``) while it is stopped. Their statuses then; SIGCONT always."""
    paused.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        during = agreement(others, timeout=pause, coordinator=leader, newer_than=newer_than)
        print(f"the others settled {time.monotonic() - stopped_at:.2f}s after the SIGSTOP")
        time.sleep(max(0.0, stopped_at + pause - time.monotonic()))  # hold the pause
        assert paused.alive
    finally:
        paused.signal(signal.SIGCONT)
    print(f"SIGCONT {time.monotonic() - stopped_at:.2f}s after the SIGSTOP")
    return during


@pytest.mark.slow
def test_paused_coordinator_is_replaced_then_reelected(tmp_path: Path) -> None:
    """The paused coordinator is the highest node, so once back the bully makes it
    coordinator again, but only through a new election: it cannot go on in its old term."""
    with Cluster(tmp_path) as cluster:
        director = cluster.start_director()
        ranked = [("alice", 10), ("bob", 20), ("carol", 30), ("dave", 40)]
        nodes = start_ranked(cluster, director, ranked)
        before = agreement(nodes)
        old = leader_of(nodes, before)
        others = [n for n in nodes if n is not old]
        interim = highest(others)
        assert (old.name, interim.name) == ("dave", "carol")

        with Traffic(others, SEND_INTERVAL, MARKER) as traffic:
            flowing(traffic, 5)
            during = hold_pause(old, others, 2.5, interim, newer_than=before[0]["term"])
            interim_term = during[0]["term"]
            resumed_at = time.monotonic()
            settled = agreement(nodes, coordinator=old, newer_than=interim_term)
            print(f"all settled {time.monotonic() - resumed_at:.2f}s after the SIGCONT")
            flowing(traffic, 10)
        sent = traffic.stop()

        roles = {s["node-id"]: s["role"] for s in settled}
        assert roles[interim.node_id] == "member"
        assert old.find_events("node.paused"), old.describe()
        assert interim.find_events("coordinator.deposed"), interim.describe()
        check_one_coordinator(nodes, old, settled[0]["term"])

        failures = [s for s in sent if s.error is not None]
        assert failures == [], f"{len(failures)} sends failed, first: {failures[:3]}"
        ids = set(traffic.acked())
        ids |= {send(n.socket, f"{MARKER} after the pause from {n.name}")["id"] for n in nodes}
        settled_histories(nodes, ids)
        check_logs(cluster)


@pytest.mark.slow
def test_paused_member_is_dropped_then_rejoins(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        director = cluster.start_director()
        nodes = start_ranked(cluster, director, [("alice", 10), ("bob", 20), ("carol", 30)])
        before = agreement(nodes)
        leader = leader_of(nodes, before)
        paused = next(n for n in nodes if n.name == "bob")
        others = [n for n in nodes if n is not paused]

        # Dropped (same term) once silent for the member timeout, so paused longer.
        hold_pause(paused, others, LAN.member_timeout + 2.5, leader, newer_than=0)
        assert [e["member"] for e in leader.find_events("member.failed")] == [paused.node_id]
        settled = agreement(nodes, coordinator=leader)
        assert settled[0]["term"] == before[0]["term"]
        assert {s["node-id"]: s["role"] for s in settled}[paused.node_id] == "member"
        assert paused.find_events("node.paused"), paused.describe()
        check_one_coordinator(nodes, leader, before[0]["term"], samples=3)

        ids = {send(n.socket, f"{MARKER} after the pause from {n.name}")["id"] for n in nodes}
        settled_histories(nodes, ids)
        check_logs(cluster)


@pytest.mark.slow
def test_director_restart_keeps_the_discussion(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        director = cluster.start_director()
        nodes = start_ranked(cluster, director, [("alice", 10), ("bob", 20), ("carol", 30)])
        before = agreement(nodes)
        leader = leader_of(nodes, before)
        port = director.port

        assert stop(director) == 0
        wait_until(
            lambda: status(leader.socket)["director"] != "ok",
            5,
            f"{leader.name} to notice the director is gone",
        )
        ids = {
            send(node.socket, f"{MARKER} without a director, {node.name}")["id"] for node in nodes
        }
        settled_histories(nodes, ids)

        # A newcomer asking while the director is down retries; when the director is back
        # it may ask before the coordinator re-registered: the grace must keep it from
        # starting a second discussion (it is told to wait, then joins).
        early = cluster.spawn_node("erin", director.url, extra=["--priority", "1"])
        early.wait_event("director.failed")
        restarted = cluster.start_director(port=port, startup_grace=None)  # default grace: 3 s
        ready_at = time.monotonic()

        def registered() -> bool:
            code, record = http_get(restarted.url + "/")
            return code == 200 and record["node-id"] == leader.node_id

        wait_until(registered, 3.0, f"{leader.name} to re-register with the new director")
        reregistered_after = time.monotonic() - ready_at
        print(f"re-registered {reregistered_after:.2f}s after the director was ready")
        assert reregistered_after < 2.5
        wait_until(lambda: status(leader.socket)["director"] == "ok", 5, "director ok again")
        assert leader.find_events("director.failed") and leader.find_events("director.recovered")

        late = cluster.spawn_node("dave", restarted.url, extra=["--priority", "5"])
        newcomers = [early.wait_ready(), late.wait_ready()]
        print(f"{early.name} was told to wait: {bool(early.find_events('join.waiting'))}")
        everyone = [*nodes, *newcomers]
        after = agreement(everyone, coordinator=leader)
        # Same discussion: same coordinator, nobody started one. (The term stays the same
        # unless a member starved of CPU suspected the coordinator: the highest then wins
        # again in a newer term.)
        if after[0]["term"] != before[0]["term"]:
            print(f"an election happened:\n{elections(cluster)}")
        for newcomer in newcomers:
            assert not newcomer.find_events("discussion.started"), newcomer.describe()
            ids.add(send(newcomer.socket, f"{MARKER} hello from {newcomer.name}")["id"])
        settled_histories(everyone, ids)
        check_logs(cluster)


@pytest.mark.slow
def test_two_members_killed_at_once(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        director = cluster.start_director()
        ranked = [("alice", 50), ("bob", 10), ("carol", 20), ("dave", 30), ("erin", 40)]
        nodes = start_ranked(cluster, director, ranked)
        before = agreement(nodes)
        leader = leader_of(nodes, before)
        assert leader.name == "alice"
        victims = [n for n in nodes if n.name in ("carol", "erin")]
        survivors = [n for n in nodes if n not in victims]

        with Traffic(survivors, SEND_INTERVAL, MARKER) as traffic:
            flowing(traffic, 10)
            for victim in victims:
                victim.signal(signal.SIGKILL)
            for victim in victims:
                victim.wait_exit(5)
            after = agreement(survivors, coordinator=leader)
            flowing(traffic, 10)
        sent = traffic.stop()

        assert all(len(s["members"]) == 3 for s in after)
        failed = {e["member"] for e in leader.find_events("member.failed")}
        # A live member starved of CPU for the failure timeout may be dropped too (it joins
        # again, as ``agreement`` shows); the victims must be among the failed.
        assert {v.node_id for v in victims} <= failed, elections(cluster)
        if failed != {v.node_id for v in victims}:
            print(f"a live member was taken for dead too:\n{elections(cluster)}")
        failures = [s for s in sent if s.error is not None]
        assert failures == [], f"{len(failures)} sends failed, first: {failures[:3]}"
        acked = set(traffic.acked())
        messages = settled_histories(survivors, acked)
        assert {m["id"] for m in messages} == acked
        check_logs(cluster)


@pytest.mark.slow
def test_peer_vanishing_mid_handshake_does_not_kill_the_node(tmp_path: Path) -> None:
    """A dial called off during an election closes its connection at any point of the
    websocket handshake; the listening node must only lose that connection. Here a client
    sends the upgrade request and resets the connection (RST) a moment later, many times."""
    with Cluster(tmp_path) as cluster:
        director = cluster.start_director()
        (alice,) = cluster.start_nodes(director.url, ["alice"])
        port = int(status(alice.socket)["address"].rsplit(":", 1)[1])
        for attempt in range(300):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError as exc:
                raise AssertionError(
                    f"alice stopped listening after {attempt} resets ({exc})\n{alice.describe(5)}"
                ) from None
            with conn:
                key = base64.b64encode(os.urandom(16)).decode()
                conn.sendall(
                    f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 13\r\n\r\n".encode()
                )
                time.sleep((0.0, 0.0005, 0.001, 0.002)[attempt % 4])  # vary the moment
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            assert alice.alive, f"died after {attempt + 1} resets\n{alice.describe()}"
        assert status(alice.socket)["role"] == "coordinator" and alice.alive
        check_logs(cluster)
