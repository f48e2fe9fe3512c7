"""A malicious member against real processes (issue 7): it cannot crash, split or stall chat.

A real ``chat-director`` and four real ``chatd`` hold the group secret; a ``Rogue``
(``chat_testing.rogue``) holds it too, with a key of its own and priority -1, so it can
never be elected legitimately. It links to every node over real websockets, joins, and
then misbehaves. Each test asserts the correct behaviour.

The harness is synchronous, so each test runs its rogue with ``trio.run`` in the main
thread and calls the harness (``chatctl`` processes, ``wait_until``) through
``trio.to_thread.run_sync``: the rogue's reader and heartbeats keep running meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import trio
from attrs import define

from chat.auth import Keyring
from chat.identity import Identity
from chat.wire import MAX_FRAME_BYTES, Frame
from chat_testing.control import history, send, status
from chat_testing.processes import DEFAULT_SECRET, Cluster, Director, Node, on_each
from chat_testing.rogue import Rogue, RogueLink, open_links
from chat_testing.waiting import DEFAULT_TIMEOUT, GaveUp, overall_deadline, wait_until
from chatd.tls import peer_tls
from chatd.transport import ChannelClosed, WebSocketTransport

pytestmark = pytest.mark.e2e

T = TypeVar("T")

MARKER = "gannet-rogue-e2e-5f1a"
NAMES = ["alice", "bob", "carol", "dave"]
# Terms must leave room for every election to come (the wire carries at most 64 bits);
# a rogue's claim must not push them anywhere near that.
SANE_TERM = 2**62
# Held (not yet deliverable) messages a node may keep. The node does not publish its
# bound today; the flood below is 3,000 messages, so any bound must refuse some of them.
FLOOD = 3000
HELD_BOUND = FLOOD


@define
class Group:
    cluster: Cluster
    director: Director
    nodes: list[Node]

    def address(self, node: Node) -> str:
        return str(status(node.socket)["public-address"])


@pytest.fixture
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    root = tmp_path_factory.mktemp("rogue")
    with overall_deadline(150, "the rogue test"), Cluster(root) as cluster:
        director = cluster.start_director()
        nodes = cluster.start_nodes(director.url, NAMES)
        wait_for_agreement(nodes)
        yield Group(cluster, director, nodes)


def rogue() -> Rogue:
    """A member: it holds the secret, so its certificate comes from the group authority."""
    ident = Identity.generate()
    tls = peer_tls(ident, Keyring.of(DEFAULT_SECRET))
    transport = WebSocketTransport("127.0.0.1", 0, MAX_FRAME_BYTES, tls=tls)
    return Rogue(ident, "mallory", DEFAULT_SECRET, transport, priority=-1)


async def sync(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A blocking harness call, in a thread, while the rogue's tasks keep running."""
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    """``trio.run``, with the one failure inside the nurseries' exception groups raised
    as itself, so a test fails with a readable message."""
    try:
        return trio.run(scenario)
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


# Checks on the honest nodes ----------------------------------------------------------------


def agreement(nodes: list[Node]) -> list[dict[str, Any]] | None:
    """Statuses, if every node is up and they agree on one honest coordinator and term."""
    dead = [n.label for n in nodes if not n.alive]
    if dead:
        raise AssertionError(f"{', '.join(dead)} exited")
    views = on_each(nodes, status)
    honest = {n.node_id for n in nodes}
    coordinators = {v["coordinator"] for v in views}
    terms = {v["term"] for v in views}
    roles = sorted(v["role"] for v in views)
    ok = (
        len(coordinators) == 1
        and coordinators <= honest
        and len(terms) == 1
        and roles == ["coordinator"] + ["member"] * (len(nodes) - 1)
        and all({m["node-id"] for m in v["members"]} >= honest for v in views)
    )
    return views if ok else None


def wait_for_agreement(nodes: list[Node], timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
    return wait_until(
        lambda: agreement(nodes), timeout, "one honest coordinator and term on every node"
    )


def check_flow(nodes: list[Node], label: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """A message sent through each honest node reaches every honest node."""
    ids = {send(n.socket, f"{MARKER} {label} from {n.name}")["id"] for n in nodes}
    wait_until(
        lambda: all(ids <= {m["id"] for m in h} for h in on_each(nodes, history)),
        timeout,
        f"messages from every node to reach every node ({label})",
    )


def histories_identical(nodes: list[Node]) -> list[list[dict[str, Any]]] | None:
    histories = on_each(nodes, history)
    return histories if all(h == histories[0] for h in histories) else None


def texts(messages: list[dict[str, Any]], origin: str) -> list[str]:
    return [m["message"] for m in messages if m["node-id"] == origin]


# Joining the rogue -------------------------------------------------------------------------


async def join_everywhere(group: Group, mallory: Rogue, links: list[RogueLink]) -> RogueLink:
    """Join through the coordinator's link; return it once every node lists the rogue."""
    views = await sync(on_each, group.nodes, status)
    coordinator = views[0]["coordinator"]
    link = next(lk for lk in links if lk.peer.node_id == coordinator)
    await link.join()
    with trio.fail_after(DEFAULT_TIMEOUT):
        await link.wait_admitted()
    await sync(
        wait_until,
        lambda: all(
            mallory.node_id in {m["node-id"] for m in v["members"]}
            for v in on_each(group.nodes, status)
        ),
        DEFAULT_TIMEOUT,
        "every node to list the rogue as a member",
    )
    return link


async def send_quietly(link: RogueLink, frame: Frame) -> bool:
    """Send unless the node has closed the link (which is a fair answer to abuse)."""
    try:
        await link.send(frame)
    except ChannelClosed:
        return False
    return True


def addresses(group: Group) -> list[str]:
    return [str(v["public-address"]) for v in on_each(group.nodes, status)]


async def taken(group: Group, node: Node, mallory: Rogue, link: RogueLink, seq: int) -> None:
    """Send the rogue's message ``seq`` on ``link`` and wait until ``node`` delivers it:
    frames on one link are taken in order, so everything sent before it was looked at."""
    await link.send(mallory.message(seq, f"{MARKER} probe {seq}"))

    def done() -> bool:
        exited = [n for n in group.nodes if not n.alive]
        if exited:
            raise GaveUp(
                f"{len(exited)} of {len(group.nodes)} nodes exited: "
                + ", ".join(f"{n.name} ({n.returncode})" for n in exited)
                + "\n"
                + exited[0].describe(8)
            )
        return bool(status(node.socket)["vector-clock"].get(mallory.node_id, 0) >= seq)

    await sync(wait_until, done, DEFAULT_TIMEOUT, f"{node.name} to take the rogue's message {seq}")


# 1. One frame stops every node -------------------------------------------------------------


@pytest.mark.parametrize(
    "term",
    [
        pytest.param(2**64 - 2, id="2^64-2"),  # refused at decode: out of the wire's range
        pytest.param(
            2**53 - 1, id="2^53-1", marks=pytest.mark.slow
        ),  # the top of the range: a forged jump
    ],
)
def test_a_claim_of_a_huge_term_stops_nobody(group: Group, term: int) -> None:
    mallory = rogue()

    async def scenario() -> None:
        async with open_links(mallory, await sync(addresses, group)) as links:
            coordinator_link = await join_everywhere(group, mallory, links)
            coordinator = next(n for n in group.nodes if n.node_id == coordinator_link.peer.node_id)
            await coordinator_link.send_raw(mallory.claim_raw(term))
            await taken(group, coordinator, mallory, coordinator_link, 1)
            # Whatever follows from the claim plays out while the rogue stays linked.
            await sync(settled_after_abuse, group.nodes)
            await sync(check_flow, group.nodes, "after a huge term")
            views = await sync(settled_after_abuse, group.nodes)
            assert all(v["term"] < SANE_TERM for v in views), [v["term"] for v in views]

    run(scenario)


def settled_after_abuse(
    nodes: list[Node], timeout: float = DEFAULT_TIMEOUT
) -> list[dict[str, Any]]:
    """Every honest node stays up and they settle on one honest coordinator."""
    try:
        return wait_for_agreement(nodes, timeout)
    except AssertionError as exc:
        gone = [f"{n.label} exited {n.returncode}\n{n.describe(8)}" for n in nodes if not n.alive]
        raise AssertionError("\n".join([str(exc), *gone])) from None


# 3. A bad signature splits the discussion --------------------------------------------------


def test_a_bad_signature_is_refused_everywhere(group: Group) -> None:
    mallory = rogue()
    forged = mallory.bad_signature(1, f"{MARKER} forged")
    valid = mallory.message(1, f"{MARKER} valid, after the forgery")
    problems: list[str] = []

    async def scenario() -> None:
        async with open_links(mallory, await sync(addresses, group)) as links:
            coordinator_link = await join_everywhere(group, mallory, links)
            target = next(lk for lk in links if lk is not coordinator_link)
            await target.send(forged)
            try:
                with trio.fail_after(5):
                    await target.closed.wait()
            except trio.TooSlowError:
                problems.append(f"{target.peer.name} kept the rogue's link open")
            others = [lk for lk in links if lk is not target and not lk.closed.is_set()]
            if others:  # the valid message goes through a node that still talks to the rogue
                await send_quietly(others[0], valid)

    run(scenario)
    check_flow(group.nodes, "after a forgery")
    try:
        histories = wait_until(lambda: histories_identical(group.nodes), 10, "identical histories")
    except AssertionError as exc:
        problems.append(str(exc)[:300])
        histories = on_each(group.nodes, history)
    for node, messages in zip(group.nodes, histories, strict=True):
        rogue_texts = texts(messages, mallory.node_id)
        if forged.message in rogue_texts:
            problems.append(f"{node.name} delivered the forged message")
        if valid.message not in rogue_texts:
            problems.append(f"{node.name} lacks the rogue's later valid message")
    assert not problems, "\n".join(problems)


# 4. Equivocation ---------------------------------------------------------------------------


def test_equivocation_leaves_identical_histories(group: Group) -> None:
    mallory = rogue()
    one, other = mallory.equivocation(1, f"{MARKER} version A", f"{MARKER} version B")

    async def scenario() -> None:
        async with open_links(mallory, await sync(addresses, group)) as links:
            await join_everywhere(group, mallory, links)
            for i, link in enumerate(links):
                await send_quietly(link, one if i < len(links) // 2 else other)
            # Honest traffic after it, so anti-entropy has every reason to run.
            await sync(check_flow, group.nodes, "after an equivocation")
            with contextlib.suppress(AssertionError):
                await sync(wait_until, lambda: histories_identical(group.nodes), 5, "agreement")

    run(scenario)
    histories = on_each(group.nodes, history)
    versions = {
        n.name: texts(h, mallory.node_id) for n, h in zip(group.nodes, histories, strict=True)
    }
    assert all(h == histories[0] for h in histories), f"the rogue's messages by node: {versions}"
    assert len(versions[group.nodes[0].name]) <= 1, versions


# 5. Unbounded memory -----------------------------------------------------------------------


def test_undeliverable_floods_and_huge_clocks_are_bounded(group: Group) -> None:
    mallory = rogue()
    target = group.nodes[1]
    padding = "x" * (4096 - 16)
    flood = [mallory.message(1_000_000 + i, f"{i:015d} {padding}") for i in range(FLOOD)]
    # 20,000 clock entries (about 740 KB): under the frame limit, over any sane group.
    huge_clock = {secrets.token_hex(16): 0 for _ in range(20_000)}
    bloated = mallory.message_raw(2, f"{MARKER} bloated clock", huge_clock)
    probe = mallory.message(2, f"{MARKER} probe")
    first = mallory.message(1, f"{MARKER} first")
    problems: list[str] = []

    async def scenario() -> None:
        async with open_links(mallory, await sync(addresses, group)) as links:
            await join_everywhere(group, mallory, links)
            link = next(lk for lk in links if lk.peer.node_id == target.node_id)
            sent = 0
            for message in flood:
                if not await send_quietly(link, message):
                    break
                sent += 1

            def looked_at() -> int:
                counters = status(target.socket)["counters"]
                return sum(
                    counters.get(name, 0)
                    for name in ("messages.held", "messages.deferred", "messages.flood_dropped")
                )

            # Every message of the flood is held, deferred (too far ahead) or dropped (over
            # the flood limit): wait until the target has looked at all of them.
            await sync(wait_until, lambda: looked_at() >= sent, DEFAULT_TIMEOUT, "the flood")
            held = (await sync(status, target.socket))["counters"].get("messages.held", 0)
            if held >= HELD_BOUND:
                problems.append(f"{target.name} holds {held} undeliverable messages (sent {sent})")
            # The rogue's own link to the target is over its flood limit now; through another
            # node its valid messages still reach everyone.
            other = next(lk for lk in links if lk is not link)
            await send_quietly(other, first)
            # The bloated clock (refused at decode), then a probe with the same sequence
            # number: exactly one of the two is taken, and it must be the probe.
            await other.send_raw(bloated)
            await send_quietly(other, probe)

    run(scenario)
    wait_until(
        lambda: all(
            v["vector-clock"].get(mallory.node_id, 0) >= 2 for v in on_each(group.nodes, status)
        ),
        DEFAULT_TIMEOUT,
        "every node to take the rogue's second message",
    )
    for node, messages in zip(group.nodes, on_each(group.nodes, history), strict=True):
        if bloated["message"] in texts(messages, mallory.node_id):
            problems.append(f"{node.name} delivered a message with a 20,000-entry clock")
    assert all(n.alive for n in group.nodes)
    assert not problems, "\n".join(problems)


# 6. Election spam --------------------------------------------------------------------------

SPAM = 2000
SETTLE = 2.0
# Refusals of a flood are summarised with a count, not logged one per frame.
MAX_REFUSAL_LINES = 100


@pytest.mark.slow
def test_election_spam_settles_fast_and_never_crowns_the_rogue(group: Group) -> None:
    mallory = rogue()
    crowned: list[str] = []
    before = len(refusal_lines(group))
    problems: list[str] = []

    def sample() -> None:
        for node, view in zip(group.nodes, on_each(group.nodes, status), strict=True):
            if view["coordinator"] == mallory.node_id:
                crowned.append(f"{node.name} at term {view['term']}")

    async def scenario() -> None:
        async with open_links(mallory, await sync(addresses, group)) as links:
            await join_everywhere(group, mallory, links)
            base = max(lk.term for lk in links)
            done = trio.Event()

            async def watch() -> None:
                while not done.is_set():
                    await sync(sample)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                for i in range(SPAM):
                    term = base + 1 + i
                    frame: Frame = (
                        mallory.election(term),
                        mallory.claim(term),
                        mallory.nodes(term),
                    )[i % 3]
                    await send_quietly(links[i % len(links)], frame)
                done.set()
            stopped = time.monotonic()
            try:
                await sync(wait_for_agreement, group.nodes, SETTLE)
            except AssertionError as exc:
                problems.append(f"not settled {SETTLE:g} s after the spam: {str(exc)[:400]}")
                await sync(settled_after_abuse, group.nodes)
                problems.append(f"settled after {time.monotonic() - stopped:.1f} s")
            await sync(sample)

    run(scenario)
    check_flow(group.nodes, "after election spam")
    refusals = len(refusal_lines(group)) - before
    if refusals >= MAX_REFUSAL_LINES:
        problems.append(f"{refusals} refusal log lines for {SPAM} frames")
    if crowned:
        problems.append(f"the rogue was named coordinator: {crowned[:5]}")
    assert not problems, "\n".join(problems)


def refusal_lines(group: Group) -> list[str]:
    return [
        line
        for node in group.nodes
        for line in node.stdout_lines
        if '"frame.refused"' in line or '"message.refused"' in line
    ]
