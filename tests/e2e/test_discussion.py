"""One discussion among real processes, from the first join to the last leave.

The tests share one director and its nodes (a module-scoped ``discussion``) and run in file
order, each leaving the discussion in the state the next one starts from: three nodes join,
talk, a fourth joins late, members and the coordinator leave, and finally the last node
stops and the discussion is gone. Each test checks its own preconditions, so a failure
points at the step that broke.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from attrs import define, field

from chat_testing.checks import (
    canonical_key,
    causal_violations,
    check_message_shape,
    sequence_number,
)
from chat_testing.control import Message, chatctl, history, http_get, json_lines, send, status, who
from chat_testing.process import binary, pids_mentioning, stop
from chat_testing.processes import Cluster, Director, Node, on_each
from chat_testing.waiting import DEFAULT_TIMEOUT, overall_deadline, wait_until

pytestmark = pytest.mark.e2e

# Every chat text carries this; no log line of any process may ever contain it.
MARKER = "zebra-quartz-e2e-7f3a91"


@define
class Discussion:
    root: Path
    cluster: Cluster
    director: Director
    live: list[Node]
    # Texts sent through chatctl, and the ids the nodes gave them.
    sent: list[Message] = field(factory=list)
    terms: list[int] = field(factory=list)

    def node(self, name: str) -> Node:
        return next(n for n in self.live if n.name == name)

    def send(self, node: Node, label: str) -> Message:
        message = send(node.socket, f"{MARKER} {label} from {node.name}")
        self.sent.append(message)
        return message


@pytest.fixture(scope="module")
def discussion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Discussion]:
    root = tmp_path_factory.mktemp("discussion")
    with Cluster(root) as cluster:
        with overall_deadline(40, "starting the discussion"):
            director = cluster.start_director()
            nodes = cluster.start_nodes(director.url, ["alice", "bob", "carol"])
            wait_for_agreement(nodes)
        yield Discussion(root, cluster, director, nodes)


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    with overall_deadline(60):
        yield


def wait_for_agreement(nodes: list[Node], timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    """Statuses once every node is in, agrees on coordinator and term, and lists ``nodes``."""
    expected = {n.node_id for n in nodes}

    def agreed() -> list[dict[str, Any]] | None:
        statuses = on_each(nodes, status)
        views = {
            (s["coordinator"], s["term"], frozenset(m["node-id"] for m in s["members"]))
            for s in statuses
        }
        ready = all(s["role"] in ("coordinator", "member") for s in statuses)
        if ready and len(views) == 1 and next(iter(views))[2] == expected:
            return statuses
        return None

    names = ", ".join(n.name for n in nodes)
    return wait_until(agreed, timeout, f"{names} to agree on coordinator, term and members")


def wait_for_messages(nodes: list[Node], ids: set[str]) -> list[list[Message]]:
    """The nodes' histories once each one holds every message in ``ids``."""

    def complete() -> list[list[Message]] | None:
        histories = on_each(nodes, history)
        if all(ids <= {m["id"] for m in h} for h in histories):
            return histories
        return None

    names = ", ".join(n.name for n in nodes)
    return wait_until(complete, DEFAULT_TIMEOUT, f"{names} to hold {len(ids)} messages")


def check_history(messages: list[Message]) -> None:
    """The invariants of one node's history: shape, uniqueness, canonical and causal order."""
    for message in messages:
        check_message_shape(message)
    ids = [m["id"] for m in messages]
    assert len(ids) == len(set(ids)), "a message appears twice"
    assert messages == sorted(messages, key=canonical_key), "not in canonical order"
    assert causal_violations(messages) == []
    by_origin: dict[str, list[int]] = {}
    for message in messages:
        by_origin.setdefault(message["node-id"], []).append(sequence_number(message))
    for origin, numbers in by_origin.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), f"gaps from {origin}"


def check_stopped(node: Node, code: int, others: list[Node]) -> None:
    """``node`` exited 0 after leaving, removed its socket, and ``others`` dropped it."""
    assert code == 0, node.describe()
    assert not node.socket.exists(), f"{node.socket} left behind"
    assert node.find_events("node.left"), node.describe()
    assert node.find_events("node.stopped"), node.describe()
    assert node.stderr_lines == [], node.describe()
    wait_until(
        lambda: all(
            node.node_id not in {m["node-id"] for m in members} for members in on_each(others, who)
        ),
        DEFAULT_TIMEOUT,
        f"the others to drop {node.name} from who",
    )


def coordinator_of(d: Discussion) -> Node:
    (leader,) = [n for n in d.live if status(n.socket)["role"] == "coordinator"]
    return leader


# The tests, in the order the discussion goes -------------------------------------------------


def test_three_nodes_join_one_discussion(discussion: Discussion) -> None:
    nodes = discussion.live
    statuses = wait_for_agreement(nodes)
    assert sorted(s["role"] for s in statuses) == ["coordinator", "member", "member"]
    (leader,) = [s for s in statuses if s["role"] == "coordinator"]
    ids = {n.node_id for n in nodes}
    for node, s in zip(nodes, statuses, strict=True):
        assert s["node-id"] == node.node_id and s["name"] == node.name
        assert s["coordinator"] == leader["node-id"]
        assert s["term"] == leader["term"] >= 1
        assert len(s["members"]) == 3
        assert {m["node-id"] for m in s["members"]} == ids
        assert s["address"].startswith("wss://127.0.0.1:")
        # Every link is TLS 1.3, and status says so.
        assert s["secure"] is True and s["peers"]
        assert all(p["encrypted"] and p["cipher"].startswith("TLSv1.3 ") for p in s["peers"])
        assert set(s["neighbours"]) <= ids - {node.node_id}
        assert s["messages"] == 0 and s["vector-clock"] == {}
    members = on_each(nodes, who)
    assert all({m["node-id"] for m in listed} == ids for listed in members)
    names = {m["node-id"]: m["name"] for m in members[0]}
    assert names == {n.node_id: n.name for n in nodes}
    discussion.terms.append(leader["term"])


def test_messages_from_every_node_reach_every_node(discussion: Discussion) -> None:
    nodes = discussion.live
    assert len(nodes) == 3

    def talk(node: Node) -> list[tuple[str, Message]]:
        out = []
        for i in range(5):
            text = f"{MARKER} #{i} from {node.name}"
            out.append((text, send(node.socket, text)))
        return out

    # The three nodes send at the same time, so their messages interleave.
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(talk, nodes))
    sent: dict[str, Message] = {}
    for node, pairs in zip(nodes, results, strict=True):
        for text, message in pairs:
            check_message_shape(message)
            assert message["node-id"] == node.node_id and message["name"] == node.name
            assert message["message"] == text
            sent[message["id"]] = message
            discussion.sent.append(message)
    assert len(sent) == 15

    histories = wait_for_messages(nodes, set(sent))
    first = histories[0]
    for node, other in zip(nodes[1:], histories[1:], strict=True):
        assert other == first, f"{node.name}'s history differs from {nodes[0].name}'s"
    check_history(first)
    held = {m["id"]: m for m in first}
    assert all(held[i] == message for i, message in sent.items()), "a message was altered"
    for node in nodes:  # each origin's five messages are numbered 1..5 in order
        mine = [m for m in first if m["node-id"] == node.node_id]
        assert [m["message"] for m in mine] == [f"{MARKER} #{i} from {node.name}" for i in range(5)]


def test_tail_follow_shows_each_message_once_in_causal_order(discussion: Discussion) -> None:
    alice, bob, carol = (discussion.node(n) for n in ("alice", "bob", "carol"))
    if not history(carol.socket):  # run on its own: give tail -n 1 something to show
        message = discussion.send(alice, "seed")
        wait_for_messages([carol], {message["id"]})
    newest = history(carol.socket)[-1]
    tail = discussion.cluster.spawn(
        "chatctl tail -f",
        [binary("chatctl"), "--socket", str(carol.socket), "tail", "-f", "--json", "-n", "1"],
    )
    # The newest message comes out once the follower is subscribed (before its snapshot).
    wait_until(lambda: tail.stdout_lines, DEFAULT_TIMEOUT, "tail -f to print the last message")
    assert json_lines(tail.stdout_lines[0])[0] == newest

    sent: list[Message] = []
    for i in range(6):
        a = discussion.send(alice, f"tail a{i}")
        if i % 2 == 0:  # bob's next message then depends on alice's
            wait_for_messages([bob], {a["id"]})
        b = discussion.send(bob, f"tail b{i}")
        sent += [a, b]
        if i % 2 == 0:
            assert b["vector-clock"].get(alice.node_id, 0) >= sequence_number(a)
    # A last message that depends on all of them: once it is shown, everything is.
    wait_for_messages([alice], {m["id"] for m in sent})
    last = discussion.send(alice, "tail end")
    sent.append(last)
    assert all(last["vector-clock"].get(m["node-id"], 0) >= sequence_number(m) for m in sent[:-1])
    wait_until(
        lambda: any(last["id"] in line for line in tail.stdout_lines),
        DEFAULT_TIMEOUT,
        "tail -f to show the last message",
    )
    tail.signal(signal.SIGTERM)
    tail.wait_exit()
    shown = [json_lines(line)[0] for line in tail.stdout_lines[1:]]
    shown_ids = [m["id"] for m in shown]
    assert len(shown_ids) == len(set(shown_ids)), "tail showed a message twice"
    assert set(shown_ids) == {m["id"] for m in sent}
    assert shown_ids[-1] == last["id"]
    assert causal_violations(shown) == []
    by_id = {m["id"]: m for m in sent}
    assert all(m == by_id[m["id"]] for m in shown)


def priority_of(status: dict[str, Any]) -> int:
    (me,) = [m for m in status["members"] if m["node-id"] == status["node-id"]]
    return int(me["priority"])


def test_late_joiner_gets_the_whole_history(discussion: Discussion) -> None:
    nodes = discussion.live
    assert len(nodes) == 3
    count = len(history(nodes[0].socket))
    ids = set()
    for i in range(count, 20):
        ids.add(discussion.send(nodes[i % 3], f"filler {i}")["id"])
    histories = wait_for_messages(nodes, ids)
    reference = histories[0]
    assert len(reference) >= 20 and all(h == reference for h in histories)

    dave = discussion.cluster.spawn_node("dave", discussion.director.url).wait_ready()
    discussion.live.append(dave)
    statuses = wait_for_agreement(discussion.live)
    # dave is in; if his (priority, node-id) is the highest, the bully makes him coordinator.
    highest = max(statuses, key=lambda s: (priority_of(s), s["node-id"]))
    assert [s["role"] == "coordinator" for s in statuses] == [s is highest for s in statuses]
    wait_until(
        lambda: history(dave.socket) == reference,
        DEFAULT_TIMEOUT,
        f"dave to receive the {len(reference)} messages of the discussion",
    )
    check_history(history(dave.socket))

    message = discussion.send(dave, "hello, I am late")
    histories = wait_for_messages(discussion.live, {message["id"]})
    assert all(h == histories[0] for h in histories)
    assert histories[0] == [*reference, message]


def test_sigterm_on_a_member(discussion: Discussion) -> None:
    leader = coordinator_of(discussion)
    member = next(n for n in discussion.live if n is not leader and n.name != "dave")
    code = stop(member)
    discussion.live.remove(member)
    check_stopped(member, code, discussion.live)
    statuses = wait_for_agreement(discussion.live)
    assert all(s["coordinator"] == leader.node_id for s in statuses)
    # The leaver said goodbye: the coordinator saw it leave, not just vanish.
    leader.wait_event("member.left", member=member.node_id)


def test_sigterm_on_the_coordinator(discussion: Discussion) -> None:
    leader = coordinator_of(discussion)
    old_term = status(leader.socket)["term"]
    code = stop(leader)
    discussion.live.remove(leader)
    check_stopped(leader, code, discussion.live)

    statuses = wait_for_agreement(discussion.live)
    (new,) = [s for s in statuses if s["role"] == "coordinator"]
    assert new["node-id"] != leader.node_id
    assert all(s["term"] == new["term"] > old_term for s in statuses)
    discussion.terms.append(new["term"])
    # The director learns the new coordinator (it re-registers every director interval).
    wait_until(
        lambda: http_get(discussion.director.url + "/")[1]["node-id"] == new["node-id"],
        DEFAULT_TIMEOUT,
        "the director to point at the new coordinator",
    )

    before = len(history(discussion.live[0].socket))
    ids = {discussion.send(node, "after the hand-over")["id"] for node in discussion.live}
    histories = wait_for_messages(discussion.live, ids)
    assert all(h == histories[0] for h in histories)
    assert len(histories[0]) == before + len(ids)
    check_history(histories[0])


def test_chatctl_leave_works_like_sigterm(discussion: Discussion) -> None:
    assert len(discussion.live) == 2
    leader = coordinator_of(discussion)
    (member,) = [n for n in discussion.live if n is not leader]
    result = chatctl(member.socket, "leave")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    code = member.wait_exit()
    discussion.live.remove(member)
    check_stopped(member, code, [leader])
    (alone,) = wait_for_agreement([leader])
    assert alone["role"] == "coordinator" and len(alone["members"]) == 1
    message = discussion.send(leader, "talking to myself")
    wait_for_messages([leader], {message["id"]})


def test_discussion_is_gone_after_the_last_node_stops(discussion: Discussion) -> None:
    (last,) = discussion.live
    assert status(last.socket)["role"] == "coordinator"
    code = stop(last)
    discussion.live.remove(last)
    assert code == 0, last.describe()
    assert last.find_events("discussion.ended"), last.describe()

    assert all(not node.alive for node in discussion.cluster.nodes)
    assert pids_mentioning(f"--socket {discussion.root}") == []
    assert list(discussion.root.glob("*.sock")) == []
    status_code, body = http_get(discussion.director.url + "/")
    assert status_code == 503, body
    assert body["error"]["code"] == "no-coordinator"

    # A newcomer finds nobody and starts a fresh, empty discussion.
    fresh = discussion.cluster.spawn_node("erin", discussion.director.url).wait_ready()
    discussion.live.append(fresh)
    (alone,) = wait_for_agreement([fresh])
    assert alone["role"] == "coordinator"
    assert alone["messages"] == 0 and alone["vector-clock"] == {}
    assert alone["term"] > max(discussion.terms, default=0)
    assert history(fresh.socket) == []
    message = discussion.send(fresh, "a new beginning")
    assert history(fresh.socket) == [message]
    code = stop(fresh)
    discussion.live.remove(fresh)
    assert code == 0, fresh.describe()
    assert not fresh.socket.exists()


def test_logs_never_contain_message_text(discussion: Discussion) -> None:
    if not discussion.sent:  # run on its own: put some text through a node
        node = discussion.cluster.spawn_node("frank", discussion.director.url).wait_ready()
        wait_for_agreement([node])
        discussion.send(node, "only this")
        assert stop(node) == 0
    daemons = [p for p in discussion.cluster.processes if isinstance(p, Node | Director)]
    lines = [line for p in daemons for line in (*p.stdout_lines, *p.stderr_lines)]
    leaks = [line for line in lines if MARKER in line]
    assert leaks == [], f"{len(leaks)} log lines hold message text, e.g. {leaks[0]}"
    # Not vacuous: the text went through these daemons, which logged while it did (there
    # is no log line per message: counters, in status).
    assert len(lines) > len(daemons) and any(MARKER in m["message"] for m in discussion.sent)
