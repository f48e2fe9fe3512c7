"""Shared pieces of the benchmark: delivery tracking, payloads, /proc readings, stats.

Child processes are ``chat_testing.process.Process`` objects, each stopped by whoever
started it (SIGTERM, then SIGKILL); every wait has a deadline.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

Result = dict[str, Any]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAYLOAD_BYTES = 200
# chatd flags that lift the flood limit: benchmarks measure the system, not the limit a
# user is held to (README: Trust model).
UNLIMITED = ["--flood-rate", "1000000", "--flood-burst", "1000000"]


class Tracker:
    """Which receivers got which message, when (monotonic ns); thread-safe.

    A message is *complete* once ``receivers`` distinct receivers other than its origin
    have it. Deliveries may be reported before the sender registers the message.
    """

    def __init__(self, receivers: int) -> None:
        self.receivers = receivers
        self.cond = threading.Condition()
        self.sent: dict[str, tuple[str, int]] = {}  # id -> (origin, scheduled ns)
        self.got: dict[str, dict[str, int]] = {}  # id -> receiver -> ns
        self.outstanding = 0
        self.completed = 0
        self.deliveries = 0

    def _is_complete(self, mid: str) -> bool:
        origin = self.sent[mid][0]
        got = self.got.get(mid, {})
        return len(got) - (origin in got) >= self.receivers

    def expect(self, mid: str, origin: str, scheduled_ns: int) -> None:
        with self.cond:
            self.sent[mid] = (origin, scheduled_ns)
            early = self.got.get(mid, {})
            self.deliveries += len(early) - (origin in early)
            if self._is_complete(mid):
                self.completed += 1
                self.cond.notify_all()
            else:
                self.outstanding += 1

    def delivered(self, receiver: str, mid: str, t_ns: int) -> None:
        with self.cond:
            got = self.got.setdefault(mid, {})
            if receiver in got:
                return
            got[receiver] = t_ns
            if mid not in self.sent or self.sent[mid][0] == receiver:
                return
            self.deliveries += 1
            if len(got) - (self.sent[mid][0] in got) == self.receivers:
                self.outstanding -= 1
                self.completed += 1
                self.cond.notify_all()

    def wait_outstanding_below(self, limit: int, deadline: float) -> bool:
        with self.cond:
            while self.outstanding >= limit:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.5))
            return True

    def latencies_ms(self, skip_before_ns: int = 0) -> tuple[list[float], int]:
        """Latency of every delivery to a non-origin receiver of a message scheduled at or
        after ``skip_before_ns``, and how many such deliveries are missing."""
        out: list[float] = []
        missing = 0
        with self.cond:
            for mid, (origin, sched) in self.sent.items():
                if sched < skip_before_ns:
                    continue
                got = self.got.get(mid, {})
                times = [t for r, t in got.items() if r != origin]
                out.extend((t - sched) / 1e6 for t in times)
                missing += max(0, self.receivers - len(times))
        return out, missing


def payload(tag: str, scheduled_ns: int) -> str:
    """A ~200-byte text carrying a tag and its scheduled send time."""
    head = f"{tag} {scheduled_ns} "
    return head + "x" * max(0, PAYLOAD_BYTES - len(head))


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes, in seconds (0 for one that is gone)."""
    total = 0
    for pid in pids:
        with suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else math.nan,
    }


def sample(values: Sequence[float], limit: int = 2000) -> list[float]:
    """At most ``limit`` values, evenly spaced over the sorted list (for plots)."""
    ordered = sorted(values)
    if len(ordered) <= limit:
        return [round(v, 4) for v in ordered]
    step = len(ordered) / limit
    return [round(ordered[int(i * step)], 4) for i in range(limit)]


def ratio(a: float, b: float) -> float:
    if not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
