"""S1 delivery latency: chat vs ngIRCd at the same group size and load, plus the floor.

Loads: one sender with window 1 (next message once the last is delivered everywhere), and
open-loop pacing at fixed rates spread over up to 4 senders. Latency = delivery time at a
receiver - scheduled send time, over every (message, receiver other than the origin).
A warm-up is dropped; each cell is repeated and the median (and spread) reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

from bench.chat_cluster import ChatCluster
from bench.common import Result, ratio, sample
from bench.floor import measure
from bench.irc import IrcGroup
from bench.load import System, run_paced, run_window

FULL: dict[str, Any] = {
    "sizes": [3, 5, 10, 20],
    "rates": [200, 500],
    "repeats": 3,
    "w1": 300,
    "paced_s": 5.0,
}
QUICK: dict[str, Any] = {"sizes": [3, 5], "rates": [200], "repeats": 1, "w1": 100, "paced_s": 2.0}


def _loads(cfg: dict[str, Any]) -> list[tuple[str, Callable[[System], Result]]]:
    loads: list[tuple[str, Callable[[System], Result]]] = [
        ("window 1", lambda s: run_window(s, 1, cfg["w1"], 30.0, warmup=cfg["w1"] // 10))
    ]
    for rate in cfg["rates"]:
        loads.append((f"{rate}/s", partial(_paced, rate=rate, seconds=cfg["paced_s"])))
    return loads


def _paced(system: System, rate: float, seconds: float) -> Result:
    return run_paced(system, rate, seconds, min(system.n, 4), seconds / 5)


def _cell(system: str, n: int, load: str, runs: list[Result]) -> Result:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    p50s = [r["p50"] for r in runs]
    return {
        "system": system,
        "N": n,
        "load": load,
        "p50_ms": med("p50"),
        "p99_ms": med("p99"),
        "max_ms": med("max"),
        "p50_spread_ms": max(p50s) - min(p50s),
        "cpu_us_per_delivery": med("cpu_us_per_delivery"),
        "missing": sum(r["missing"] for r in runs),
        "repeats": len(runs),
    }


def run(quick: bool) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    rows: list[Result] = []
    samples: dict[str, list[float]] = {}
    notes: list[str] = []
    for kind in ("tcp", "ws"):
        floor = measure(kind, 1000 if quick else 5000)
        one_way = {k: v / 2 for k, v in floor["rtt"].items()}
        rows.append(
            {
                "system": f"floor-{kind}",
                "N": 2,
                "load": "window 1 (RTT/2)",
                "p50_ms": one_way["p50"],
                "p99_ms": one_way["p99"],
                "max_ms": one_way["max"],
            }
        )
        samples[f"floor-{kind}"] = sample([v / 2 for v in floor["rtts"]])
    for n in cfg["sizes"]:
        for make in (ChatCluster, IrcGroup):
            with make(n) as system:
                for load, fn in _loads(cfg):
                    runs = [fn(system) for _ in range(cfg["repeats"])]
                    rows.append(_cell(system.name, n, load, runs))
                    samples[f"{system.name} N={n} {load}"] = sample(
                        [v for r in runs for v in r["latencies"]]
                    )
                    errors = [e for r in runs for e in r.get("errors", [])]
                    if errors:
                        notes.append(f"{system.name} N={n} {load}: send errors {errors[:2]}")
    irc = {(r["N"], r["load"]): r for r in rows if r["system"] == "ngircd"}
    for row in rows:
        ref = irc.get((row["N"], row["load"]))
        if row["system"] == "chat" and ref is not None:
            row["p50_vs_irc"] = ratio(row["p50_ms"], ref["p50_ms"])
            row["p99_vs_irc"] = ratio(row["p99_ms"], ref["p99_ms"])
    notes.append(
        "latency from the scheduled send time to delivery at each receiver but the origin; "
        "chat stamps inside chatd (--bench-trace), ngIRCd when the client reads the bytes"
    )
    notes.append(f"repeats per cell: {cfg['repeats']} (median; spread = max-min of p50)")
    notes.append("floor rows: half the round trip between two Python processes")
    return {
        "scenario": "S1",
        "title": "delivery latency (ms)",
        "rows": rows,
        "notes": notes,
        "samples": samples,
    }
