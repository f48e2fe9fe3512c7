"""S2 throughput: one sender keeping 1, 16 or 64 messages outstanding (not yet delivered
everywhere); deliveries/s to the other N-1 members and CPU µs per delivery summed over the
server side (every chatd, or the ngircd process; ngIRCd's clients are this process).
"""

from __future__ import annotations

from typing import Any

from bench.chat_cluster import ChatCluster
from bench.common import Result, ratio
from bench.irc import IrcGroup
from bench.load import run_window

WINDOWS = (1, 16, 64)


def run(quick: bool) -> dict[str, Any]:
    n = 5 if quick else 10
    count, limit = (600, 6.0) if quick else (3000, 15.0)
    rows: list[Result] = []
    for make in (ChatCluster, IrcGroup):
        with make(n) as system:
            run_window(system, 16, count // 10, limit)  # warm-up, not reported
            for window in WINDOWS:
                r = run_window(system, window, count, limit)
                rows.append(
                    {
                        "system": system.name,
                        "N": n,
                        "window": window,
                        "sent": r["sent"],
                        "deliveries_per_s": r["deliveries_per_s"],
                        "cpu_us_per_delivery": r["cpu_us_per_delivery"],
                        "p50_ms": r["p50"],
                        "missing": r["missing"],
                    }
                )
    irc = {r["window"]: r for r in rows if r["system"] == "ngircd"}
    for row in rows:
        ref = irc.get(row["window"])
        if row["system"] == "chat" and ref is not None:
            row["rate_vs_irc"] = ratio(row["deliveries_per_s"], ref["deliveries_per_s"])
            row["cpu_vs_irc"] = ratio(row["cpu_us_per_delivery"], ref["cpu_us_per_delivery"])
    notes = [
        f"each window: up to {count} messages or {limit:g} s, whichever first",
        "CPU from /proc/PID/stat utime+stime (10 ms ticks) before/after each run",
    ]
    return {"scenario": "S2", "title": f"throughput, N = {n}", "rows": rows, "notes": notes}
