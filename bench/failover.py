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
Everything it starts it stops (the e2e harness's ``Cluster``); every wait has a deadline.

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
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import UNLIMITED  # noqa: E402  (needs the repository on sys.path)
from tests.e2e.harness import (  # noqa: E402  (needs the repository on sys.path)
    Cluster,
    ControlClient,
    Node,
    Traffic,
    http_get,
)

T = TypeVar("T")
POLL = 0.010
MARKER = "bench-failover"


def poll(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """``predicate()`` every ``POLL`` seconds until truthy; errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL)


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


def one_run(number: int, nodes_count: int, interval: float, after: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as tmp, Cluster(Path(tmp)) as cluster:
        director = cluster.start_director()
        names = [f"n{i}" for i in range(nodes_count)]
        nodes = [
            cluster.spawn_node(
                name, director.url, extra=["--priority", str(10 * (i + 1)), *UNLIMITED]
            )
            for i, name in enumerate(names)
        ]
        for node in nodes:
            node.wait_ready()
        old = nodes[-1]  # the highest priority ends as coordinator (bully)
        survivors = nodes[:-1]
        expected = survivors[-1]
        clients = [ControlClient(n.socket, timeout=5.0) for n in nodes]
        try:

            def formed() -> list[dict[str, Any]] | None:
                views = statuses(clients)
                everyone = {n.node_id for n in nodes}
                if all(
                    v["coordinator"] == old.node_id
                    and {m["node-id"] for m in v["members"]} == everyone
                    for v in views
                ):
                    return views
                return None

            settled = poll(formed, 20, "the discussion to form")
            term_before = settled[0]["term"]
            clients[-1].close()
            survivor_clients = clients[:-1]
            with Traffic(survivors, interval, MARKER) as traffic:
                poll(lambda: len(traffic.acked()) >= 20, 10, "traffic to flow")
                old.signal(signal.SIGKILL)
                killed = time.monotonic()
                killed_wall = time.time()
                agreed_s: float | None = None
                director_s: float | None = None
                new: str | None = None
                director_named: str | None = None
                deadline = killed + 20
                while (agreed_s is None or director_s is None) and time.monotonic() < deadline:
                    if agreed_s is None:
                        now = time.monotonic()  # resolution: one poll period (~10-20 ms)
                        views = statuses(survivor_clients)
                        leaders = {v["coordinator"] for v in views}
                        if len(leaders) == 1 and old.node_id not in leaders and None not in leaders:
                            agreed_s, new = now - killed, leaders.pop()
                    if director_s is None:
                        now = time.monotonic()
                        code, record = http_get(director.url + "/", timeout=1.0)
                        if code == 200 and record["node-id"] != old.node_id:
                            director_s, director_named = now - killed, record["node-id"]
                    time.sleep(POLL)
                # Settled: count coordinators while traffic goes on for ``after`` seconds.
                max_coordinators = 0
                samples = 0
                term_after = None
                end = time.monotonic() + after
                while time.monotonic() < end:
                    views = statuses(survivor_clients)
                    max_coordinators = max(
                        max_coordinators, [v["role"] for v in views].count("coordinator")
                    )
                    term_after = views[0]["term"]
                    samples += 1
                    time.sleep(POLL)
            sent = traffic.stop()
            acked = set(traffic.acked())
            final: list[list[str]] = []

            def converged() -> bool:
                nonlocal final
                final = histories(survivor_clients)
                return all(acked <= set(h) for h in final) and all(h == final[0] for h in final)

            with suppress(TimeoutError):  # not converging is measured below, as losses
                poll(converged, 10, "histories to converge")
            held = set.intersection(*(set(h) for h in final)) if final else set()
            lost = len(acked - held)
            duplicates = sum(len(h) - len(set(h)) for h in final)

            # A breakdown from the survivors' logs (same host clock, wall time).
            def first(event: str, among: Sequence[Node]) -> float | None:
                stamps = [
                    datetime.fromisoformat(e["timestamp"]).timestamp() - killed_wall
                    for n in among
                    for e in n.find_events(event)
                    if datetime.fromisoformat(e["timestamp"]).timestamp() >= killed_wall
                ]
                return min(stamps, default=None)

            winner = [n for n in survivors if n.node_id == new]
            return {
                "run": number,
                "nodes": nodes_count,
                "interval_s": interval,
                "killed": old.node_id,
                "expected": expected.node_id,
                "new_coordinator": new,
                "new_is_highest_survivor": new == expected.node_id,
                "agreed_s": agreed_s,
                "suspected_s": first("coordinator.suspected", survivors),
                "elected_s": first("coordinator.elected", winner),
                "director_s": director_s,
                "director_named_new": director_named == new,
                "term_before": term_before,
                "term_after": term_after,
                "sent": len(sent),
                "acked": len(acked),
                "send_errors": [s.error for s in sent if s.error is not None],
                "lost": lost,
                "duplicates": duplicates,
                "identical_histories": bool(final) and all(h == final[0] for h in final),
                "max_coordinators": max_coordinators,
                "coordinator_samples": samples,
            }
        finally:
            for client in clients:
                client.close()


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="kill -9 the coordinator; time the failover")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--interval", type=float, default=0.020, help="seconds between sends")
    parser.add_argument("--after", type=float, default=1.0, help="traffic after agreement (s)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "failover.json")
    args = parser.parse_args(argv)

    runs: list[dict[str, Any]] = []
    header = f"{'run':>3} {'suspect ms':>10} {'elected ms':>10} {'agreed ms':>9} "
    header += f"{'director ms':>11} {'acked':>6} {'lost':>4} "
    header += f"{'max coord':>9} {'term':>7} {'highest':>7}"
    print(header)
    for number in range(1, args.runs + 1):
        try:
            r = one_run(number, args.nodes, args.interval, args.after)
        except Exception as exc:  # a run that fails is reported, and the others still run
            runs.append({"run": number, "error": f"{type(exc).__name__}: {exc}"})
            print(f"{number:>3} failed: {runs[-1]['error']}", flush=True)
            continue
        runs.append(r)
        print(
            f"{number:>3} {fmt(r['suspected_s']):>10} {fmt(r['elected_s']):>10} "
            f"{fmt(r['agreed_s']):>9} {fmt(r['director_s']):>11} {r['acked']:>6} "
            f"{r['lost']:>4} {r['max_coordinators']:>9} "
            f"{r['term_before']:>3}->{r['term_after']!s:<3} {r['new_is_highest_survivor']!s:>7}",
            flush=True,
        )

    done = [r for r in runs if "error" not in r]

    def median(key: str) -> float | None:
        values = [r[key] for r in done if r[key] is not None]
        return statistics.median(values) if values else None

    summary = {
        "suspected_s": median("suspected_s"),
        "elected_s": median("elected_s"),
        "agreed_s": median("agreed_s"),
        "director_s": median("director_s"),
        "lost": median("lost"),
        "max_coordinators": max((r["max_coordinators"] for r in done), default=None),
    }
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
    bad = [
        r
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
    if bad:
        print(f"runs with a problem: {[r['run'] for r in bad]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
