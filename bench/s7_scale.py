"""S7 — beyond one machine: the overlay at 100 and 1,000 nodes.

Live rows: an in-process cluster (real ``Node`` + ``Runtime``, memory network, virtual
time). After the joins settle, a 1 ms per-hop latency is injected through the network's
route hook and one member sends K broadcasts, one at a time; we record the virtual time
from send to the last delivery, the frames relayed (counters) and the BFS depth of the
relay graph. Graph rows: the same figures computed from ``chatd.core.overlay.assign``
alone, for sizes a single process cannot join in reasonable time.

    .venv/bin/python -m bench.s7_scale [--quick]
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import trio
import trio.testing

from bench.s3_overlay import bfs, counter_sum, main, quiet_logs, settle
from chat.wire import Message
from chat_testing.cluster import Cluster, ClusterNode, open_cluster
from chatd.config import TEST
from chatd.core.overlay import assign
from chatd.core.relay import tree

HOP_DELAY = 0.001  # virtual seconds per frame, every link
K = 5
LIVE_JOIN_BUDGET_S = 120.0  # wall-clock seconds for the attempt at a large live cluster
GROWTH_STEP = 50


def tree_relay(overlay: Mapping[str, list[str]], sender: str) -> tuple[int, int]:
    """(frames sent, rounds) for one broadcast under the node's relay rule: down the
    overlay's breadth-first tree from the sender (``chatd.core.relay``), every link up."""
    children = tree(overlay, sender)
    depth = {sender: 0}
    stack = [sender]
    while stack:
        node = stack.pop()
        for child in children[node]:
            depth[child] = depth[node] + 1
            stack.append(child)
    return sum(len(c) for c in children.values()), max(depth.values())


def graph_row(n: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(n)]
    overlay = assign(ids)
    sender = ids[n // 2]
    degrees = [len(p) for p in overlay.values()]
    diameter = max(max(bfs(overlay, node).values()) for node in ids)
    depth = bfs(overlay, sender)
    frames, rounds = tree_relay(overlay, sender)
    return {
        "n": n,
        "source": "overlay graph",
        "degree_mean": round(sum(degrees) / n, 2),
        "degree_max": max(degrees),
        "diameter": diameter,
        "rounds": rounds,
        "hops_mean": round(sum(depth.values()) / (n - 1), 2),
        "relayed_per_broadcast": frames,
        "redundancy": round(frames / (n - 1), 2),
        "virtual_ms_to_last": None,
        "join_wall_s": None,
    }


async def broadcast(cluster: Cluster, members: list[ClusterNode], sender: ClusterNode) -> float:
    """Send one message; the virtual seconds until the last node delivered it."""
    delivered: dict[str, float] = {}

    def recorder(key: str) -> Callable[[Message], None]:
        def record(message: Message) -> None:
            delivered.setdefault(f"{key}/{message.id}", trio.current_time())

        return record

    for member in members:
        if member is not sender:
            member.runtime.on_deliver = recorder(member.node.node_id)
    t0 = trio.current_time()
    message = sender.runtime.send_text("s7 broadcast " + "x" * 150)
    keys = [f"{m.node.node_id}/{message.id}" for m in members if m is not sender]
    await cluster.wait_until(lambda: all(k in delivered for k in keys), "broadcast delivered")
    for member in members:
        member.runtime.on_deliver = None
    return max(delivered[k] for k in keys) - t0


async def live(n: int) -> dict[str, Any]:
    async with open_cluster(seed=n, config=TEST) as cluster:
        wall0 = time.monotonic()
        # The first node outranks the rest, so no joiner takes the coordinator role over.
        members = [await cluster.add("n00000", priority=1)]
        members += [await cluster.add(f"n{i:05d}") for i in range(1, n)]
        await settle(cluster, members, within=600)
        join_wall = time.monotonic() - wall0
        sender = members[n // 2]
        overlay = sender.node.membership.overlay
        cluster.network.route = lambda source, destination: (1, HOP_DELAY)
        relayed0 = counter_sum(members, "messages.relayed")
        latencies = [await broadcast(cluster, members, sender) for _ in range(K)]
        relayed = (counter_sum(members, "messages.relayed") - relayed0) / K
    degrees = [len(p) for p in overlay.values()]
    depth = bfs(overlay, sender.node.node_id)
    return {
        "n": n,
        "source": "live cluster",
        "degree_mean": round(sum(degrees) / n, 2),
        "degree_max": max(degrees),
        "diameter": max(max(bfs(overlay, node).values()) for node in overlay),
        "rounds": max(depth.values()),
        "hops_mean": round(sum(depth.values()) / (n - 1), 2),
        "relayed_per_broadcast": round(relayed, 1),
        "redundancy": round(relayed / (n - 1), 2),
        "virtual_ms_to_last": round(max(latencies) * 1000, 2),
        "join_wall_s": round(join_wall, 1),
    }


async def grow(target: int, budget: float) -> list[tuple[int, float]]:
    """Join nodes in steps of ``GROWTH_STEP`` until ``target`` or the wall-clock budget."""
    checkpoints: list[tuple[int, float]] = []
    token = trio.lowlevel.current_trio_token()
    with trio.CancelScope() as scope:
        # Virtual-time waits do not return while the cluster is busy: a thread cancels.
        timer = threading.Timer(budget, lambda: token.run_sync_soon(scope.cancel))
        timer.start()
        try:
            async with open_cluster(seed=target, config=TEST) as cluster:
                wall0 = time.monotonic()
                members = [await cluster.add("n00000", priority=1)]
                while len(members) < target:
                    start = len(members)
                    for i in range(start, min(target, start + GROWTH_STEP)):
                        members.append(await cluster.add(f"n{i:05d}"))
                    await settle(cluster, members, within=600)
                    checkpoints.append((len(members), time.monotonic() - wall0))
        finally:
            timer.cancel()
    return checkpoints


def run(quick: bool) -> dict[str, Any]:
    live_sizes = (30, 100) if quick else (100,)
    graph_sizes = (30, 100) if quick else (100, 1_000)
    big = None if quick else 1_000
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    with quiet_logs():
        for n in live_sizes:
            rows.append(trio.run(live, n, clock=trio.testing.MockClock(autojump_threshold=0)))
        if big is not None:
            checkpoints: list[tuple[int, float]] = trio.run(
                grow, big, LIVE_JOIN_BUDGET_S, clock=trio.testing.MockClock(autojump_threshold=0)
            )
            reached = checkpoints[-1] if checkpoints else (1, 0.0)
            shown = ", ".join(f"{n} in {s:.0f} s" for n, s in checkpoints)
            extrapolated = ""
            if len(checkpoints) >= 2 and reached[0] < big:
                (n1, t1), (n2, t2) = checkpoints[-2:]
                power = math.log(t2 / t1) / math.log(n2 / n1)
                extrapolated = (
                    f" Total join time grows as n^{power:.1f} over the last step, which "
                    f"extrapolates to ~{t2 * (big / n2) ** power / 3600:.1f} h for {big} nodes."
                )
            notes.append(
                f"Live cluster of {big}: joining in steps of {GROWTH_STEP} (each step waits "
                f"until every node knows every member and holds its links) reached "
                f"{reached[0]} nodes within the {LIVE_JOIN_BUDGET_S:g} s wall-clock budget "
                f"({shown}). Each join sends a full `nodes` frame (every member and the "
                f"whole overlay) to every member, so joining n nodes costs O(n^2) frames of "
                f"O(n log n) bytes; the {big}-node figures therefore come from the overlay "
                f"graph alone.{extrapolated}"
            )
    for n in graph_sizes:
        rows.append(graph_row(n))
    notes += [
        "source 'live cluster': real Node + Runtime in one process over the memory network, "
        "virtual MockClock, TEST timers; after the joins settled a fixed per-hop latency of "
        f"{HOP_DELAY * 1000:g} ms was injected through MemoryNetwork.route, and one member "
        f"sent {K} broadcasts one at a time. relayed_per_broadcast: mean delta of the sum of "
        "counters['messages.relayed']; redundancy = relayed / (n - 1) nodes reached; "
        "virtual_ms_to_last: the slowest of the K, from send to the last delivery "
        "(Runtime.on_deliver); a relay queued behind a heartbeat on the same link waits "
        "one more hop delay. join_wall_s: wall-clock time to join every node.",
        "source 'overlay graph': chatd.core.overlay.assign on random node-ids (no nodes "
        "run); relayed_per_broadcast follows the relay rule: down the overlay's "
        "breadth-first tree from the sender (chatd.core.relay), every link up. The live "
        "rows check the model.",
        "degree_*: overlay neighbours (the coordinator additionally links to every "
        "member); diameter: over the overlay; rounds: the sender's tree depth (its BFS "
        "eccentricity over the overlay) = protocol rounds to reach every node; hops_mean: "
        "mean BFS depth over the others.",
    ]
    return {"scenario": "S7", "title": "Scale: 100 and 1,000 nodes", "rows": rows, "notes": notes}


if __name__ == "__main__":
    main(run)
