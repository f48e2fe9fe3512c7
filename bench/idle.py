"""Idle cost: N real ``chatd`` processes joined in one discussion, then nothing sent.

After every node counts all N members (and a short settle), reads utime+stime of every
node from /proc/PID/stat over a window and prints the CPU of the whole group and of the
coordinator (the first node: it founds the discussion and has the highest priority), as
% of one core, and the links each node holds (``status`` peers).

    .venv/bin/python -m bench.idle [--n 10 30] [--seconds 10] [--secure]
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.chat_cluster import ChatCluster
from bench.common import cpu_seconds

SETTLE_S = 3.0  # after the last join: the joins' own work is not idle cost


def measure(n: int, seconds: float, secure: bool) -> dict[str, float]:
    with ChatCluster(n, secure=secure) as chat:
        time.sleep(SETTLE_S)
        pids = chat.pids()
        t0 = time.monotonic()
        total0, coordinator0 = cpu_seconds(pids), cpu_seconds(pids[:1])
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        total, coordinator = cpu_seconds(pids) - total0, cpu_seconds(pids[:1]) - coordinator0
        links = [len(chat.status(i).get("peers", {})) for i in range(n)]
    return {
        "n": n,
        "total_pct": round(100 * total / elapsed, 1),
        "coordinator_pct": round(100 * coordinator / elapsed, 1),
        "member_links_median": statistics.median(links[1:]) if n > 1 else 0,
        "member_links_max": max(links[1:]) if n > 1 else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--secure", action="store_true", help="group secret and TLS links")
    args = parser.parse_args()
    for n in args.n:
        print(measure(n, args.seconds, args.secure), flush=True)


if __name__ == "__main__":
    main()
