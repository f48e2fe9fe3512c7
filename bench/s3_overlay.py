"""S3 — overlay cost: full mesh vs the neighbour overlay as the group grows.

An in-process cluster (real ``Node`` + ``Runtime`` over the memory network, virtual time)
of N nodes, once as a full mesh (``full_mesh_max = N``) and once with the default overlay
(ring + power-of-two chords above 6 members). After the joins settle, one member sends K
broadcasts; per broadcast we report the CPU time of the whole process, the frames relayed
and the duplicates suppressed (sums of every node's counters) and the overlay hops to the
farthest node (BFS from the sender).

    .venv/bin/python -m bench.s3_overlay [--quick]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog
import trio
import trio.testing
from attrs import evolve

from chat_testing.cluster import Cluster, ClusterNode, open_cluster
from chatd.config import TEST
from chatd.core.effects import Role
from chatd.core.snapshot import Snapshot

SIZES = (5, 10, 20, 40)
QUICK_SIZES = (5, 10)
DEFAULT_OVERLAY_MAX = 6  # Config.full_mesh_max default
IDLE_WINDOW = 1.0  # virtual seconds of idle cluster to measure the heartbeat cost


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Drop the nodes' log lines (below CRITICAL) for the run; restore the config after."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    try:
        yield
    finally:
        structlog.configure(**saved)


def bfs(graph: Mapping[str, list[str] | set[str]], source: str) -> dict[str, int]:
    """Hop count from ``source`` to every node it reaches."""
    depth = {source: 0}
    queue = deque([source])
    while queue:
        node = queue.popleft()
        for peer in graph.get(node, ()):
            if peer not in depth:
                depth[peer] = depth[node] + 1
                queue.append(peer)
    return depth


def hop_stats(graph: Mapping[str, list[str] | set[str]], source: str) -> tuple[int, float, int]:
    """(eccentricity, mean hops over the other nodes, nodes reached) from ``source``."""
    depth = bfs(graph, source)
    others = [d for node, d in depth.items() if node != source]
    return max(others, default=0), sum(others) / max(len(others), 1), len(depth)


def counter_sum(members: list[ClusterNode], name: str) -> int:
    return sum(m.node.snapshot().counters.get(name, 0) for m in members)


def linked_as_wanted(snap: Snapshot) -> bool:
    """Linked to every peer it wants: all members for the coordinator, else its overlay
    neighbours and the coordinator."""
    if snap.role is Role.COORDINATOR:
        wanted = {m.node_id for m in snap.members}
    else:
        wanted = {*snap.neighbours, snap.coordinator or snap.node_id}
    return wanted - {snap.node_id} <= set(snap.peers)


async def settle(cluster: Cluster, members: list[ClusterNode], within: float = 120.0) -> None:
    """Every node joined, knows every member and is linked to every peer it wants."""
    n = len(members)
    await cluster.wait_joined(*members)
    await cluster.wait_until(
        lambda: all(
            len((snap := m.node.snapshot()).members) == n and linked_as_wanted(snap)
            for m in members
        ),
        "membership and links settled",
        within,
    )


async def measure(n: int, full_mesh: bool, k: int) -> dict[str, Any]:
    config = evolve(TEST, full_mesh_max=n if full_mesh else DEFAULT_OVERLAY_MAX)
    async with open_cluster(seed=n, config=config) as cluster:
        members = [await cluster.add(f"n{i:04d}") for i in range(n)]
        await settle(cluster, members)
        sender = members[n // 2]  # not the coordinator (the first node)
        relayed0 = counter_sum(members, "messages.relayed")
        dup0 = counter_sum(members, "messages.duplicate")
        before = [m.node.snapshot().messages for m in members]
        # Idle cost (heartbeats) per virtual second, to subtract from the broadcast window.
        idle0 = time.process_time()
        await trio.sleep(IDLE_WINDOW)
        idle_rate = (time.process_time() - idle0) / IDLE_WINDOW
        cpu0 = time.process_time()
        t0 = trio.current_time()
        for i in range(k):
            sender.runtime.send_text(f"s3 broadcast {i} " + "x" * 150)
        await cluster.wait_until(
            lambda: all(
                m.node.snapshot().messages - b == k for m, b in zip(members, before, strict=True)
            ),
            "every broadcast delivered everywhere",
        )
        cpu = time.process_time() - cpu0
        elapsed = trio.current_time() - t0
        relayed = counter_sum(members, "messages.relayed") - relayed0
        duplicates = counter_sum(members, "messages.duplicate") - dup0
        node = sender.node
        links = [len(m.node.snapshot().peers) for m in members]
        ov_max, ov_mean, _ = hop_stats(node.membership.overlay, node.node_id)
    degrees = [len(p) for p in node.membership.overlay.values()]
    return {
        "n": n,
        "mode": "full-mesh" if full_mesh else "overlay",
        "k": k,
        "cpu_ms_per_broadcast": round(cpu * 1000 / k, 3),
        "cpu_ms_per_broadcast_net": round(max(0.0, cpu - idle_rate * elapsed) * 1000 / k, 3),
        "idle_cpu_ms_per_virtual_s": round(idle_rate * 1000, 1),
        "virtual_s_window": round(elapsed, 3),
        "relayed_per_broadcast": round(relayed / k, 2),
        "duplicates_per_broadcast": round(duplicates / k, 2),
        "overlay_degree_mean": round(sum(degrees) / len(degrees), 2),
        "links_per_node_mean": round(sum(links) / len(links), 2),
        "hops_max": ov_max,
        "hops_mean": round(ov_mean, 2),
    }


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK_SIZES if quick else SIZES
    k = 10 if quick else 50
    rows: list[dict[str, Any]] = []
    with quiet_logs():
        for n in sizes:
            for full_mesh in (True, False):
                if not full_mesh and n <= DEFAULT_OVERLAY_MAX:
                    continue  # at or below 6 members the default overlay is a full mesh
                row: dict[str, Any] = trio.run(
                    measure, n, full_mesh, k, clock=trio.testing.MockClock(autojump_threshold=0)
                )
                rows.append(row)
    return {
        "scenario": "S3",
        "title": "Overlay cost: full mesh vs neighbour overlay",
        "rows": rows,
        "notes": [
            f"In-process cluster (chat_testing.cluster, TEST timers, virtual MockClock); "
            f"after every join settled, one non-coordinator member sends K={k} broadcasts "
            f"of ~165 bytes.",
            "cpu_ms_per_broadcast: time.process_time() delta / K for the whole process: the "
            "whole cluster runs in it, so this is the CPU every node together spends per "
            "broadcast (signing, verifying, encoding, decoding, relaying), plus the "
            "heartbeats of the virtual time that passes until the last delivery "
            "(virtual_s_window; polled every 10 ms). cpu_ms_per_broadcast_net subtracts the "
            "idle cost of that window, measured over 1 virtual second of the idle cluster "
            "(idle_cpu_ms_per_virtual_s).",
            "relayed/duplicates per broadcast: deltas of the sum over nodes of "
            "counters['messages.relayed'] (every frame carrying the message, the origin's own "
            "sends included) and ['messages.duplicate'], / K; every frame is either a first "
            "delivery or a suppressed duplicate, so duplicates = relayed - (N - 1). Messages "
            "go down the overlay's breadth-first tree from their origin (chatd.core.relay): "
            "in a full mesh only the origin sends.",
            "hops_*: BFS from the sender over the overlay graph (node.membership.overlay), "
            "which the tree follows.",
            "For N <= 6 the default overlay is the full mesh, so only the full-mesh row is run.",
        ],
    }


def print_result(result: dict[str, Any]) -> None:
    rows: list[dict[str, Any]] = result["rows"]
    print(f"{result['scenario']} — {result['title']}")
    if rows:
        columns = list(rows[0])
        widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
        print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
        for row in rows:
            print(
                "  ".join(
                    str(row.get(c, "")).rjust(w) for c, w in zip(columns, widths, strict=True)
                )
            )
    for note in result["notes"]:
        print(f"- {note}")


def main(module_run: Any = run) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer messages")
    args = parser.parse_args()
    started = time.monotonic()
    print_result(module_run(args.quick))
    print(f"({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
