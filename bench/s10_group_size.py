"""S10 - group size: one secure group of real ``chatd`` processes on 127.0.0.1 that grows
one member at a time (each started once the previous one is a member, as people join
a discussion), measured when it reaches each size: the time the joins took, the idle CPU
of the group and of its coordinator, delivery latency at a light paced load, and RSS.

A size whose joins do not finish within its deadline (the sum of the join times) is
measured with the members it has and marked; the group then grows no further. Nothing
waits without a deadline.

    .venv/bin/python -m bench.s10_group_size [--quick]
"""

from __future__ import annotations

import statistics
import time
from contextlib import suppress
from typing import Any

from bench.chat_cluster import START_TIMEOUT, ChatCluster
from bench.common import Result, cpu_seconds, rss_bytes
from bench.load import run_paced
from bench.s3_overlay import main
from bench.s8_encryption import check_mode, net_us
from bench.s9_targets import frames
from chat_testing.waiting import WaitTimeout, wait_until

FULL: dict[str, Any] = {
    "deadlines": {10: 60.0, 30: 120.0, 100: 180.0},  # size -> seconds of joins, in all
    "idle_s": 10.0,
    "paced_s": 10.0,
}
QUICK: dict[str, Any] = {"deadlines": {10: 40.0, 30: 90.0}, "idle_s": 3.0, "paced_s": 3.0}
# Messages/s, light: a lively chat room. At 100 members 20 msg/s is 1,980 deliveries/s,
# more than 2 cores carry at ~1.6 ms of CPU per delivery (measured: p50 12 s, the group
# still catching up when the run ended).
RATE = 5.0
SENDERS = 2
JOIN_TIMEOUT = 60.0  # one join, at most
SETTLE_S = 1.0  # after a join burst, before idle CPU (a measuring pause)
SETTLE_TIMEOUT = 60.0  # after the paced load, for every node to hold every message
MEMBER_ROLES = ("member", "coordinator")


def join_one(chat: ChatCluster, timeout: float) -> tuple[float, str]:
    """Start one node and wait until its status shows it a member among all the others:
    the seconds it took from process start and "ok", or what it showed when the wait
    gave up (the node is then stopped)."""
    started = time.monotonic()
    node = chat.spawn()
    index, size = chat.n - 1, chat.n
    last: dict[str, Any] = {}

    def joined() -> bool:
        nonlocal last
        last = chat.status(index)
        return last.get("role") in MEMBER_ROLES and len(last.get("members", [])) >= size

    try:
        node.wait_ready(max(0.1, timeout))
        left = timeout - (time.monotonic() - started)
        wait_until(joined, max(0.1, left), f"n{index} to join", interval=0.02)
    except AssertionError:  # WaitTimeout, or the process gave up
        chat.drop_last()
        members = len(last.get("members", []))
        return time.monotonic() - started, f"n{index} {last.get('role')}, {members} members"
    return time.monotonic() - started, "ok"


def settle(chat: ChatCluster, timeout: float) -> float:
    """After a load: until every node holds as many messages (at most ``timeout``); the
    seconds it took, so that the next joins meet a group that has caught up."""
    started = time.monotonic()

    def even() -> bool:
        counts = {s.get("messages") for s in chat.statuses()}
        return len(counts) == 1 and None not in counts

    with suppress(WaitTimeout):  # the time says it did not
        wait_until(even, timeout, "every node to hold every message", interval=0.2)
    return time.monotonic() - started


def views_complete(chat: ChatCluster, timeout: float) -> int:
    """How many nodes count every member, once all do or at the deadline."""
    seen = 0

    def count() -> bool:
        nonlocal seen
        seen = sum(len(s.get("members", [])) == chat.n for s in chat.statuses())
        return seen == chat.n

    with suppress(WaitTimeout):  # not all: the count says how many
        wait_until(count, timeout, "every node to count every member", interval=0.2)
    return seen


def idle(chat: ChatCluster, seconds: float) -> dict[str, float]:
    """% of one core: the whole group, its coordinator, the median member."""
    coordinator = chat.status(0).get("coordinator")
    pids = chat.pids()
    time.sleep(SETTLE_S)
    before = [cpu_seconds([pid]) for pid in pids]
    time.sleep(seconds)
    used = [cpu_seconds([pid]) - b for pid, b in zip(pids, before, strict=True)]
    pct = [u / seconds * 100 for u in used]
    coord = [p for p, node in zip(pct, chat.nodes, strict=True) if node.node_id == coordinator]
    others = [p for p, node in zip(pct, chat.nodes, strict=True) if node.node_id != coordinator]
    return {
        "idle_group_pct": sum(pct),
        "idle_coordinator_pct": coord[0] if coord else float("nan"),
        "idle_member_pct": statistics.median(others) if others else float("nan"),
    }


def measure(chat: ChatCluster, cfg: dict[str, Any]) -> Result:
    """Idle CPU, RSS, then the paced load, on the group as it is."""
    idle_cost = idle(chat, cfg["idle_s"])
    rss = [rss_bytes(pid) / 2**20 for pid in chat.pids()]
    before = chat.counters()
    r = run_paced(chat, RATE, cfg["paced_s"], SENDERS, cfg["paced_s"] / 5)
    copies, _ = frames(int(r["deliveries"]), before, chat.counters())
    idle_per_s = idle_cost["idle_group_pct"] / 100
    return {
        **idle_cost,
        "rss_median_mib": statistics.median(rss),
        "rss_max_mib": max(rss),
        "p50_ms": r["p50"],
        "p99_ms": r["p99"],
        "missing": r["missing"],
        "cpu_us_per_delivery": r["cpu_us_per_delivery"],
        "cpu_us_net": net_us(r, idle_per_s) if r["deliveries"] else float("nan"),
        "frames_per_delivery": copies,
    }


def grow(chat: ChatCluster, size: int, budget: float, joins: list[float]) -> str:
    """Joins until ``size`` members or ``budget`` seconds of joins in all; how it ended.
    A join that gives up counts its time too."""
    while chat.n < size:
        left = budget - sum(joins)
        if left <= 0:
            return "deadline"
        took, ended = join_one(chat, min(JOIN_TIMEOUT, left))
        joins.append(took)
        if ended != "ok":
            return f"a join gave up after {took:.0f} s ({ended})"
    return "ok"


def run(quick: bool) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    rows: list[Result] = []
    notes: list[str] = []
    joins: list[float] = []
    started = time.monotonic()
    with ChatCluster(1, secure=True) as chat:
        joins.append(time.monotonic() - started)  # the director and the founder
        for size, budget in cfg["deadlines"].items():
            had = chat.n
            ended = grow(chat, size, budget, joins)
            complete = views_complete(chat, START_TIMEOUT)
            if size == 10:
                notes.append(f"links: {', '.join(sorted(check_mode(chat, 'secure')))}")
            row: Result = {
                "size": size,
                "joined": chat.n,
                "join_s": sum(joins),
                "last_join_s": joins[-1],
                "views_complete": complete,
            }
            row["joins"] = ended if ended in ("ok", "deadline") else "gave up"
            if chat.n > had:  # a group that did not grow was measured already
                row.update(measure(chat, cfg))
                if ended == "ok" and size != max(cfg["deadlines"]):  # more joins to come
                    row["settled_s"] = settle(chat, SETTLE_TIMEOUT)
            rows.append(row)
            if ended != "ok":
                notes.append(f"size {size}: {chat.n} joined in {sum(joins):.0f} s; {ended}")
                break
    notes += [
        "one group, secure (group secret, TLS 1.3 links), --profile lan, --bench-trace; node "
        "k starts once node k-1 is a member (its status: role member, all members); join_s "
        "= the sum of the joins, process start to member (Python start-up included), from "
        "the director and founder on; the measuring pauses are not in it",
        f"deadlines (seconds of joins): {cfg['deadlines']}; views_complete = nodes counting "
        "every member; settled_s = after the paced load, until every node holds as many "
        f"messages (at most {SETTLE_TIMEOUT:g} s), before the next joins",
        f"idle: CPU (utime+stime) over {cfg['idle_s']:g} s in % of one core: all chatd, the "
        "coordinator, the median member",
        f"paced: {RATE:g} msg/s from {SENDERS} senders for {cfg['paced_s']:g} s (first 20 % "
        "dropped); cpu_us_net = CPU per delivery less the idle rate times the run; "
        "frames_per_delivery as in S9 (message copies received / deliveries)",
        "RSS = VmRSS per node, MiB, after the idle window; 100 nodes need ~5-6 GB and ~2 "
        "pipes + ~30 descriptors each (ulimit -n 20000 here)",
    ]
    return {
        "scenario": "S10",
        "title": "group size (one growing secure group)",
        "rows": rows,
        "notes": notes,
        "sizes": list(cfg["deadlines"]),
        "joins_s": [round(j, 3) for j in joins],
    }


if __name__ == "__main__":
    main(run)
