"""S9 - issue 12's targets at N = 10, secure (a group secret, TLS 1.3 peer links: the
default), side by side with ngIRCd in one run.

Both systems are up at once; the runs alternate which goes first (as in S8), so load
from elsewhere on the machine falls on both alike. Per repeat and system: window 1
(latency p50/p99), then window 16 (deliveries/s, CPU per delivery). Before any traffic:
idle RSS per node and idle CPU. Frames per delivery come from the nodes' status counters
(see ``frames``). Medians over the repeats.

    .venv/bin/python -m bench.s9_targets [--quick]
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.chat_cluster import ChatCluster
from bench.common import Result, cpu_seconds, ratio, rss_bytes
from bench.irc import IrcGroup
from bench.load import System, run_window
from bench.s3_overlay import main
from bench.s8_encryption import check_mode

N = 10
LOAD_WINDOW = 16
SETTLE_S = 2.0  # after the group formed, before idle RSS (a measuring pause)
FULL: dict[str, Any] = {"repeats": 3, "w1": 300, "count": 3000, "limit_s": 15.0, "idle_s": 5.0}
QUICK: dict[str, Any] = {"repeats": 1, "w1": 100, "count": 1000, "limit_s": 6.0, "idle_s": 2.0}

# Metric names other modules read (bench/targets.py).
P50 = "latency p50 ms, window 1"
P99 = "latency p99 ms, window 1"
RATE = f"deliveries/s, window {LOAD_WINDOW}"
CPU = f"CPU us/delivery, window {LOAD_WINDOW}"
CPU_W1 = "CPU us/delivery, window 1"
FRAMES = f"frames per delivery, window {LOAD_WINDOW}"
RELAYED = f"  of which relayed, window {LOAD_WINDOW}"
RSS = "idle RSS per node MiB (median)"
IDLE = "idle CPU % of one core, whole group"
SYSTEMS = ("chat", "ngircd")


def frames(deliveries: int, before: dict[str, int], after: dict[str, int]) -> tuple[float, float]:
    """Message copies on the wire per delivery, from the nodes' counters summed.

    Every copy a node receives is either new to it (one delivery, counted by the tracker)
    or counted in ``messages.duplicate``, relays and repairs alike; so copies = deliveries
    + new duplicates. ``messages.relayed`` counts the copies ``accept`` sends (the
    origin's own and every relay), not repairs. NaN when the nodes count no relays."""

    if "messages.relayed" not in after or not deliveries:  # counters renamed, or nothing
        return float("nan"), float("nan")

    def grew(key: str) -> float:  # a counter shows once it is first incremented
        return float(after.get(key, 0) - before.get(key, 0))

    copies = deliveries + grew("messages.duplicate")
    return ratio(copies, deliveries), ratio(grew("messages.relayed"), deliveries)


def _row(metric: str, runs: dict[str, list[float]]) -> Result:
    med = {s: float(statistics.median(v)) if v else float("nan") for s, v in runs.items()}
    chat = runs["chat"]
    spread = (max(chat) - min(chat)) / med["chat"] * 100 if chat and med["chat"] else None
    return {
        "metric": metric,
        "N": N,
        "chat": med["chat"],
        "ngircd": med["ngircd"] if runs["ngircd"] else None,
        "chat_vs_irc": ratio(med["chat"], med["ngircd"]) if runs["ngircd"] else None,
        "repeats": len(chat),
        "spread_pct": spread,
    }


def cpu_pct(pids: list[int], seconds: float) -> float:
    """CPU of ``pids`` over the next ``seconds``, in % of one core (a measuring window)."""
    cpu0 = cpu_seconds(pids)
    time.sleep(seconds)
    return (cpu_seconds(pids) - cpu0) / seconds * 100


def _idle(chat: ChatCluster, irc: IrcGroup, seconds: float) -> dict[str, dict[str, list[float]]]:
    time.sleep(SETTLE_S)
    chat_rss = [rss_bytes(pid) / 2**20 for pid in chat.pids()]
    chat_idle = cpu_pct(chat.pids(), seconds)
    irc_idle = cpu_pct(irc.pids(), seconds)
    return {
        RSS: {"chat": [statistics.median(chat_rss)], "ngircd": [rss_bytes(irc.server.pid) / 2**20]},
        IDLE: {"chat": [chat_idle], "ngircd": [irc_idle]},
    }


def _measure(system: System, cfg: dict[str, Any], chat: ChatCluster | None) -> dict[str, float]:
    """Window 1 then window 16 on one system; with ``chat``, its frame counts too."""
    w1 = run_window(system, 1, cfg["w1"], 30.0, warmup=cfg["w1"] // 10)
    before = chat.counters() if chat else {}
    load = run_window(system, LOAD_WINDOW, cfg["count"], cfg["limit_s"])
    out = {
        P50: float(w1["p50"]),
        P99: float(w1["p99"]),
        CPU_W1: float(w1["cpu_us_per_delivery"]),
        RATE: float(load["deliveries_per_s"]),
        CPU: float(load["cpu_us_per_delivery"]),
        "missing": float(w1["missing"] + load["missing"]),
    }
    if chat is not None:
        out[FRAMES], out[RELAYED] = frames(int(load["deliveries"]), before, chat.counters())
    return out


def run(quick: bool) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    keys = (P50, P99, RATE, CPU, CPU_W1, FRAMES, RELAYED)
    values: dict[str, dict[str, list[float]]] = {k: {s: [] for s in SYSTEMS} for k in keys}
    missing = dict.fromkeys(SYSTEMS, 0.0)
    notes: list[str] = []
    with ChatCluster(N, secure=True) as chat, IrcGroup(N) as irc:
        ciphers = check_mode(chat, "secure")
        idle = _idle(chat, irc, cfg["idle_s"])
        systems: dict[str, tuple[System, ChatCluster | None]] = {
            "chat": (chat, chat),
            "ngircd": (irc, None),
        }
        for system, _ in systems.values():
            run_window(system, LOAD_WINDOW, cfg["count"] // 10, cfg["limit_s"])  # warm-up
        for rep in range(cfg["repeats"]):
            for name in SYSTEMS if rep % 2 == 0 else SYSTEMS[::-1]:
                system, counted = systems[name]
                got = _measure(system, cfg, counted)
                missing[name] += got.pop("missing")
                for key, value in got.items():
                    values[key][name].append(value)
    rows = [_row(k, values[k]) for k in keys] + [_row(RSS, idle[RSS]), _row(IDLE, idle[IDLE])]
    if any(missing.values()):
        notes.append(f"deliveries missing after the drain: {missing}")
    notes += [
        f"chat: chat-director and {N} chatd with a group secret (peer links "
        f"{', '.join(sorted(ciphers))}), --profile lan, flood limit lifted, --bench-trace; "
        f"ngIRCd: one server and {N} clients in one channel; both up at once, "
        f"{cfg['repeats']} repeat(s) alternating which runs first; medians; spread_pct = "
        "chat's (max - min) / median",
        f"window 1: {cfg['w1']} messages (10 % warm-up dropped); window {LOAD_WINDOW}: up to "
        f"{cfg['count']} messages or {cfg['limit_s']:g} s; CPU = utime+stime of every chatd "
        "(or of ngircd) per delivery to a receiver other than the origin (10 ms ticks)",
        "frames per delivery = (deliveries + the growth of messages.duplicate summed over "
        "the nodes) / deliveries: message copies received, relays and repairs; 'of which "
        "relayed' = the growth of messages.relayed (copies sent on first sight, the origin's "
        "included) / deliveries; heartbeats and other control frames are not counted",
        f"idle: {SETTLE_S:g} s after the group formed, before any traffic: VmRSS per node "
        f"(ngIRCd: its server) and CPU over {cfg['idle_s']:g} s",
    ]
    return {
        "scenario": "S9",
        "title": f"issue 12's targets, N = {N}, secure",
        "rows": rows,
        "notes": notes,
    }


if __name__ == "__main__":
    main(run)
