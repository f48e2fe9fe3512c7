"""S8 — what encryption costs (issue 8): the same measurements with a group secret (peer
links over TLS 1.3, the default) and with ``--insecure`` (plain websockets), side by side.

For each N both clusters are up at once and the runs alternate between them (secure first
in even repeats, insecure first in odd ones), so load from elsewhere on the machine falls
on both columns alike. Per repeat and mode: window 1 (latency p50/p99 and CPU per delivery
of an idle-ish group), then window 16 (deliveries/s and CPU per delivery under load). The
median over the repeats is reported. Then a node holding 10,000 messages in each mode and
fresh joiners, again alternating: process start to the whole history, and the join log.

    .venv/bin/python -m bench.s8_encryption [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.chat_cluster import ChatCluster
from bench.common import UNLIMITED, Result, cpu_seconds, ratio
from bench.load import run_window
from bench.s3_overlay import main
from bench.s4_join import fill, measure_join, wait_coordinator
from bench.tls_frames import FRAME_BYTES, frame_runs
from chat_testing.process import stop
from chat_testing.processes import Cluster, Node

FULL: dict[str, Any] = {
    "sizes": [5, 10],
    "repeats": 5,
    "w1": 300,
    "count": 1500,
    "limit_s": 15.0,
    "join_messages": 10_000,
    "joins": 3,
    "frames": 4000,
    "idle_s": 4.0,
}
# CPU comes in 10 ms ticks: the quick figures are indicative only.
QUICK: dict[str, Any] = {
    "sizes": [5],
    "repeats": 2,
    "w1": 200,
    "count": 1000,
    "limit_s": 6.0,
    "join_messages": 10_000,
    "joins": 1,
    "frames": 2000,
    "idle_s": 2.0,
}
LOAD_WINDOW = 16
MODES = ("secure", "insecure")
TARGET_CPU_PCT = 15.0  # issue 8: encryption costs under 15 % CPU per delivery
FILL_BUDGET_S = 120.0
IDLE_SETTLE_S = 0.5


def _order(rep: int) -> tuple[str, ...]:
    return MODES if rep % 2 == 0 else MODES[::-1]


def _row(metric: str, n: int | str, runs: dict[str, list[float]]) -> Result:
    """The medians of both modes, their ratio and the spread of the repeats."""
    med = {m: float(statistics.median(runs[m])) for m in MODES}
    spread = max((max(v) - min(v)) / med[m] * 100 if med[m] else 0.0 for m, v in runs.items())
    r = ratio(med["secure"], med["insecure"])
    return {
        "metric": metric,
        "N": n,
        "secure": med["secure"],
        "insecure": med["insecure"],
        "secure_vs_insecure": r,
        "change_pct": (r - 1) * 100,
        "repeats": len(runs["secure"]),
        "spread_pct": spread,
    }


def check_mode(cluster: ChatCluster, mode: str) -> set[str]:
    """The ciphers of node 0's links (``plain`` for none), once its status shows the mode
    the cluster is meant to run: every link TLS for ``secure``, none for ``insecure``."""
    status = cluster.status(0)
    ciphers = {str(p.get("cipher") or "plain") for p in status.get("peers", [])}
    secure = mode == "secure"
    if not ciphers or bool(status.get("secure")) != secure or ("plain" in ciphers) == secure:
        raise RuntimeError(f"{mode} cluster: status secure={status.get('secure')}, {ciphers}")
    return ciphers


def idle_cpu(system: ChatCluster, seconds: float) -> float:
    """CPU seconds per second of the whole idle cluster (heartbeats, timers)."""
    time.sleep(IDLE_SETTLE_S)  # a measuring window, not a synchronisation
    cpu0 = cpu_seconds(system.pids())
    time.sleep(seconds)
    return (cpu_seconds(system.pids()) - cpu0) / seconds


def net_us(run: Result, idle_per_s: float) -> float:
    """CPU µs per delivery without the idle cost of the run's duration."""
    deliveries = int(run["deliveries"])
    cpu = float(run["cpu_us_per_delivery"]) * deliveries / 1e6
    return (cpu - idle_per_s * float(run["elapsed_s"])) * 1e6 / deliveries


def group_runs(cfg: dict[str, Any], n: int, notes: list[str]) -> list[Result]:
    w = LOAD_WINDOW
    metrics: dict[str, Callable[[float, Result, Result], float]] = {
        "latency p50 ms, window 1": lambda _, w1, __: float(w1["p50"]),
        "latency p99 ms, window 1": lambda _, w1, __: float(w1["p99"]),
        "CPU us/delivery, window 1": lambda _, w1, __: float(w1["cpu_us_per_delivery"]),
        "CPU us/delivery, window 1, idle subtracted": lambda idle, w1, _: net_us(w1, idle),
        f"CPU us/delivery, window {w}": lambda _, __, ld: float(ld["cpu_us_per_delivery"]),
        f"CPU us/delivery, window {w}, idle subtracted": lambda idle, _, ld: net_us(ld, idle),
        f"deliveries/s, window {w}": lambda _, __, ld: float(ld["deliveries_per_s"]),
        f"latency p50 ms, window {w}": lambda _, __, ld: float(ld["p50"]),
        "idle CPU ms/s per node": lambda idle, _, __: idle * 1000 / n,
    }
    values: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MODES} for k in metrics}
    missing = dict.fromkeys(MODES, 0)
    with ChatCluster(n, secure=True) as secure, ChatCluster(n, secure=False) as insecure:
        systems = {"secure": secure, "insecure": insecure}
        for mode, system in systems.items():
            ciphers = check_mode(system, mode)
            if n == cfg["sizes"][0]:
                notes.append(f"{mode} links: {', '.join(sorted(ciphers))}")
            run_window(system, LOAD_WINDOW, cfg["count"] // 10, cfg["limit_s"])  # warm-up
        for rep in range(cfg["repeats"]):
            for mode in _order(rep):
                system = systems[mode]
                idle = idle_cpu(system, cfg["idle_s"])
                w1 = run_window(system, 1, cfg["w1"], 30.0, warmup=cfg["w1"] // 10)
                load = run_window(system, LOAD_WINDOW, cfg["count"], cfg["limit_s"])
                missing[mode] += int(w1["missing"]) + int(load["missing"])
                for key, get in metrics.items():
                    values[key][mode].append(get(idle, w1, load))
    if any(missing.values()):
        notes.append(f"N={n}: deliveries missing after the drain: {missing}")
    return [_row(key, n, runs) for key, runs in values.items()]


def join_runs(cfg: dict[str, Any]) -> list[Result]:
    count = cfg["join_messages"]
    keys = ("process_to_history_s", "join_log_s", "joiner_cpu_s", "origin_cpu_s")
    values: dict[str, dict[str, list[float]]] = {k: {m: [] for m in MODES} for k in keys}
    with (
        tempfile.TemporaryDirectory(prefix="s8-", dir="/tmp") as tmp,
        Cluster(Path(tmp)) as cluster,
    ):
        directors: dict[str, str] = {}
        origins: dict[str, Node] = {}
        for mode in MODES:
            insecure = mode == "insecure"
            directors[mode] = cluster.start_director(insecure=insecure).url
            origins[mode] = cluster.spawn_node(
                f"{mode[0]}a",
                directors[mode],
                insecure=insecure,
                extra=["--priority", "10", *UNLIMITED],
            )
        deadline = time.monotonic() + FILL_BUDGET_S
        for mode, origin in origins.items():
            origin.wait_ready()
            wait_coordinator(origin)
            filled = fill(origin.socket, 0, count, deadline)
            if filled < count:
                raise RuntimeError(f"{mode}: filled {filled} of {count} messages in time")
        for rep in range(cfg["joins"]):
            for mode in _order(rep):
                cpu0 = cpu_seconds([origins[mode].pid])
                joined = measure_join(
                    cluster, directors[mode], f"{mode[0]}j{rep}", count, mode == "insecure"
                )
                joined["origin_cpu_s"] = cpu_seconds([origins[mode].pid]) - cpu0
                for key in keys:
                    values[key][mode].append(float(joined[key]))
        for origin in origins.values():
            stop(origin)
    label = f"join {count:,} msgs"
    return [
        _row(f"{label}: process start -> history s", 2, values["process_to_history_s"]),
        _row(f"{label}: join.started -> completed s", 2, values["join_log_s"]),
        _row(f"{label}: joiner CPU s", 2, values["joiner_cpu_s"]),
        _row(f"{label}: origin CPU s", 2, values["origin_cpu_s"]),
    ]


def run(quick: bool) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    notes: list[str] = []
    rows: list[Result] = []
    for n in cfg["sizes"]:
        rows += group_runs(cfg, n, notes)
    rows += join_runs(cfg)
    for load in ("ping-pong", "stream"):
        runs = frame_runs(load, cfg["frames"], cfg["repeats"])
        rows.append(_row(f"one link alone: CPU us per frame, {load}", "link", runs))
    verdicts = []
    for row in rows:
        if row["metric"].startswith("CPU"):
            met = "met" if row["change_pct"] < TARGET_CPU_PCT else "NOT met"
            verdicts.append(f"{row['metric']} N={row['N']}: {row['change_pct']:+.1f} % ({met})")
    notes += [
        f"target: encryption costs < {TARGET_CPU_PCT:g} % CPU per delivery; " + "; ".join(verdicts),
        "secure = chat-director and chatd --secret-file (TLS 1.3 peer links, the default); "
        "insecure = --insecure (plain websockets); both --profile lan, flood limit lifted, "
        "--bench-trace; CPU = utime+stime of every chatd (10 ms ticks) per delivery to a "
        "receiver other than the origin",
        f"per N: both clusters up at once, {cfg['repeats']} repeats alternating which mode "
        f"runs first; each: idle {cfg['idle_s']:g} s (CPU of the idle group: heartbeats, "
        "timers), then window 1 and window 16; 'idle subtracted' takes that idle rate times "
        "the run's duration off the run's CPU, leaving what the messages cost; window 1: "
        f"{cfg['w1']} messages (10 % warm-up dropped); window "
        f"{LOAD_WINDOW}: up to {cfg['count']} messages or {cfg['limit_s']:g} s; medians; "
        "spread_pct = the larger of the two modes' (max - min) / median over the repeats",
        f"join: a node holding {cfg['join_messages']:,} messages per mode, {cfg['joins']} "
        "fresh joiner(s) each, alternating (S4's measure: process start -> status shows the "
        "whole history; join.started -> join.completed from the joiner's log; the joiner's "
        "CPU from its start, Python start-up and its certificate included; the origin's CPU "
        "while the joiner ran)",
        f"one link alone (bench/tls_frames.py): one process, one trio-websocket link over "
        f"127.0.0.1 with chatd's TLS contexts or plain, {FRAME_BYTES}-byte frames; the "
        "process's CPU (both ends) per frame; ping-pong = one frame on the wire at a time, "
        f"stream = frames queue up; {cfg['frames']} frames, {cfg['repeats']} repeats",
    ]
    return {
        "scenario": "S8",
        "title": "what encryption costs (secure vs --insecure)",
        "rows": rows,
        "notes": notes,
    }


if __name__ == "__main__":
    main(run)
