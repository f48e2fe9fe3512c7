"""Measure coordinator failover among real processes: kill -9 the coordinator under traffic.

Each run starts a ``chat-director`` and N ``chatd`` (``--profile lan``, distinct priorities)
on 127.0.0.1, lets every node but the coordinator send a message every ``--interval``
seconds through a control-socket connection it keeps open, then SIGKILLs the coordinator
and measures, on this host's monotonic clock:

- ``agreed_s``: SIGKILL → every survivor's ``status`` (the control-socket op behind
  ``chatctl status --json``) names the same new coordinator (polled every 10 ms);
- ``director_s``: SIGKILL → the director's ``GET /`` (JSON) names it (polled every 10 ms);
- ``lost``: messages a survivor acknowledged that are missing from some survivor's final
  history (traffic goes on for ``--after`` seconds after agreement, then stops; the
  histories get up to 10 s to converge);
- ``max_coordinators``: the most survivors reporting role ``coordinator`` in one poll,
  over the ``--after`` seconds following agreement (1 is right).

Prints a table and the medians, and writes every run's raw numbers as JSON to ``--out``.
Everything it starts it stops (``chat_testing.processes.Cluster``); every wait has a deadline.

    .venv/bin/python bench/failover.py [--runs 5] [--out bench/results/failover.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chat_testing.control import ControlClient, http_get
from chat_testing.processes import Cluster, Director, Node
from chat_testing.traffic import Traffic
from chat_testing.waiting import WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script (bench/s5_failover.py does)

from bench.common import UNLIMITED  # noqa: E402  (needs the repository on sys.path)

POLL = 0.010
MARKER = "bench-failover"


def statuses(clients: Sequence[ControlClient]) -> list[dict[str, Any]]:
    out = []
    for client in clients:
        answer = client.request("status")
        if not answer.get("ok"):
            raise ValueError(f"status refused: {answer}")
        out.append(answer["status"])
    return out


def histories(clients: Sequence[ControlClient]) -> list[list[str]]:
    return [[m["id"] for m in client.request("history")["messages"]] for client in clients]


def start(cluster: Cluster, nodes_count: int) -> tuple[Director, list[Node]]:
    """A director and ``nodes_count`` nodes of rising priority, each ready."""
    director = cluster.start_director()
    nodes = [
        cluster.spawn_node(
            f"n{i}", director.url, extra=["--priority", str(10 * (i + 1)), *UNLIMITED]
        )
        for i in range(nodes_count)
    ]
    for node in nodes:
        node.wait_ready()
    return director, nodes


def wait_formed(clients: Sequence[ControlClient], nodes: Sequence[Node]) -> int:
    """Until every node has all as members under the highest one; the term then."""
    everyone = {n.node_id for n in nodes}

    def formed() -> list[dict[str, Any]] | None:
        views = statuses(clients)
        if all(
            v["coordinator"] == nodes[-1].node_id
            and {m["node-id"] for m in v["members"]} == everyone
            for v in views
        ):
            return views
        return None

    return int(wait_until(formed, 20, "the discussion to form", POLL)[0]["term"])


@dataclass
class Failover:
    """What the survivors and the director showed after the SIGKILL (host clocks)."""

    killed: float  # monotonic
    killed_wall: float
    agreed_s: float | None = None
    new: str | None = None
    director_s: float | None = None
    director_named: str | None = None


def kill_and_watch(old: Node, clients: Sequence[ControlClient], director: str) -> Failover:
    """SIGKILL ``old``; poll the survivors and the director until both name a successor
    (at most 20 s)."""
    old.signal(signal.SIGKILL)
    seen = Failover(time.monotonic(), time.time())
    deadline = seen.killed + 20
    while (seen.agreed_s is None or seen.director_s is None) and time.monotonic() < deadline:
        if seen.agreed_s is None:
            now = time.monotonic()  # resolution: one poll period (~10-20 ms)
            leaders = {v["coordinator"] for v in statuses(clients)}
            if len(leaders) == 1 and old.node_id not in leaders and None not in leaders:
                seen.agreed_s, seen.new = now - seen.killed, leaders.pop()
        if seen.director_s is None:
            now = time.monotonic()
            code, record = http_get(director + "/", timeout=1.0)
            if code == 200 and record["node-id"] != old.node_id:
                seen.director_s, seen.director_named = now - seen.killed, record["node-id"]
        time.sleep(POLL)
    return seen


def count_coordinators(clients: Sequence[ControlClient], after: float) -> dict[str, Any]:
    """Settled: the most coordinators in one poll while traffic goes on for ``after`` s."""
    max_coordinators = 0
    samples = 0
    term_after = None
    end = time.monotonic() + after
    while time.monotonic() < end:
        views = statuses(clients)
        max_coordinators = max(max_coordinators, [v["role"] for v in views].count("coordinator"))
        term_after = views[0]["term"]
        samples += 1
        time.sleep(POLL)
    return {
        "term_after": term_after,
        "max_coordinators": max_coordinators,
        "coordinator_samples": samples,
    }


def losses(traffic: Traffic, clients: Sequence[ControlClient]) -> dict[str, Any]:
    """Stop the traffic; what the survivors' histories lack of what was acknowledged, once
    they converge (or after 10 s)."""
    sent = traffic.stop()
    acked = set(traffic.acked())
    final: list[list[str]] = []

    def converged() -> bool:
        nonlocal final
        final = histories(clients)
        return all(acked <= set(h) for h in final) and all(h == final[0] for h in final)

    with suppress(WaitTimeout):  # not converging is measured below, as losses
        wait_until(converged, 10, "histories to converge", POLL)
    held = set.intersection(*(set(h) for h in final)) if final else set()
    return {
        "sent": len(sent),
        "acked": len(acked),
        "send_errors": [s.error for s in sent if s.error is not None],
        "lost": len(acked - held),
        "duplicates": sum(len(h) - len(set(h)) for h in final),
        "identical_histories": bool(final) and all(h == final[0] for h in final),
    }


def first_logged(event: str, among: Sequence[Node], since_wall: float) -> float | None:
    """Seconds from ``since_wall`` to the first ``event`` any of ``among`` logged after it
    (the survivors' logs: same host clock, wall time)."""
    stamps = [
        datetime.fromisoformat(e["timestamp"]).timestamp() - since_wall
        for n in among
        for e in n.find_events(event)
        if datetime.fromisoformat(e["timestamp"]).timestamp() >= since_wall
    ]
    return min(stamps, default=None)


def measure(
    director: Director, nodes: list[Node], clients: list[ControlClient], options: dict[str, float]
) -> dict[str, Any]:
    """Traffic through the survivors-to-be, the kill, and what followed."""
    old, survivors = nodes[-1], nodes[:-1]  # the highest priority is the coordinator (bully)
    term_before = wait_formed(clients, nodes)
    clients[-1].close()
    survivor_clients = clients[:-1]
    with Traffic(survivors, options["interval"], MARKER) as traffic:
        wait_until(lambda: len(traffic.acked()) >= 20, 10, "traffic to flow", POLL)
        seen = kill_and_watch(old, survivor_clients, director.url)
        settled = count_coordinators(survivor_clients, options["after"])
    lost = losses(traffic, survivor_clients)
    winner = [n for n in survivors if n.node_id == seen.new]
    expected = survivors[-1]
    return {
        "killed": old.node_id,
        "expected": expected.node_id,
        "new_coordinator": seen.new,
        "new_is_highest_survivor": seen.new == expected.node_id,
        "agreed_s": seen.agreed_s,
        "suspected_s": first_logged("coordinator.suspected", survivors, seen.killed_wall),
        "elected_s": first_logged("coordinator.elected", winner, seen.killed_wall),
        "director_s": seen.director_s,
        "director_named_new": seen.director_named == seen.new,
        "term_before": term_before,
        **settled,
        **lost,
    }


def one_run(number: int, nodes_count: int, interval: float, after: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp, Cluster(Path(tmp)) as cluster:
        director, nodes = start(cluster, nodes_count)
        clients = [ControlClient(n.socket, timeout=5.0) for n in nodes]
        try:
            measured = measure(director, nodes, clients, {"interval": interval, "after": after})
        finally:
            for client in clients:
                client.close()
    return {"run": number, "nodes": nodes_count, "interval_s": interval, **measured}


HEADER = (
    f"{'run':>3} {'suspect ms':>10} {'elected ms':>10} {'agreed ms':>9} "
    f"{'director ms':>11} {'acked':>6} {'lost':>4} "
    f"{'max coord':>9} {'term':>7} {'highest':>7}"
)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def row(r: dict[str, Any]) -> str:
    return (
        f"{r['run']:>3} {fmt(r['suspected_s']):>10} {fmt(r['elected_s']):>10} "
        f"{fmt(r['agreed_s']):>9} {fmt(r['director_s']):>11} {r['acked']:>6} "
        f"{r['lost']:>4} {r['max_coordinators']:>9} "
        f"{r['term_before']:>3}->{r['term_after']!s:<3} {r['new_is_highest_survivor']!s:>7}"
    )


def medians(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in runs if "error" not in r]

    def median(key: str) -> float | None:
        values = [r[key] for r in done if r[key] is not None]
        return statistics.median(values) if values else None

    return {
        "suspected_s": median("suspected_s"),
        "elected_s": median("elected_s"),
        "agreed_s": median("agreed_s"),
        "director_s": median("director_s"),
        "lost": median("lost"),
        "max_coordinators": max((r["max_coordinators"] for r in done), default=None),
    }


def problems(runs: Sequence[dict[str, Any]]) -> list[int]:
    """The runs that failed or showed something wrong."""
    return [
        r["run"]
        for r in runs
        if "error" in r
        or r["agreed_s"] is None
        or r["director_s"] is None
        or not r["director_named_new"]
        or not r["new_is_highest_survivor"]
        or r["lost"]
        or r["duplicates"]
        or r["send_errors"]
        or r["max_coordinators"] != 1
    ]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="kill -9 the coordinator; time the failover")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.020, help="seconds between sends")
    parser.add_argument("--after", type=float, default=1.0, help="traffic after agreement (s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "failover.json")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    runs: list[dict[str, Any]] = []
    print(HEADER)
    for number in range(1, args.runs + 1):
        try:
            runs.append(one_run(number, args.nodes, args.interval, args.after))
        except Exception as exc:  # a run that fails is reported, and the others still run
            runs.append({"run": number, "error": f"{type(exc).__name__}: {exc}"})
            print(f"{number:>3} failed: {runs[-1]['error']}", flush=True)
            continue
        print(row(runs[-1]), flush=True)
    summary = medians(runs)
    print(
        f"median: suspected {fmt(summary['suspected_s'])} ms,"
        f" elected {fmt(summary['elected_s'])} ms, agreed {fmt(summary['agreed_s'])} ms,"
        f" director {fmt(summary['director_s'])} ms,"
        f" lost {summary['lost']}; most coordinators at once after settling:"
        f" {summary['max_coordinators']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "host": {"platform": platform.platform(), "python": platform.python_version()},
        "settings": {"runs": args.runs, "nodes": args.nodes, "interval_s": args.interval},
        "median": summary,
        "runs": runs,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw results: {args.out}")
    bad = problems(runs)
    if bad:
        print(f"runs with a problem: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
