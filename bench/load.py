"""Load generators shared by chat and ngIRCd: a window of outstanding messages, or open-loop
pacing at a fixed rate. Latency is measured from the *scheduled* send time (open loop: a
slow send does not hide the queueing it causes). Every run is bounded in count and time.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Protocol

from bench.common import Result, Tracker, cpu_seconds, summary

DRAIN_S = 10.0  # after the last send, how long deliveries may still arrive


class Sender(Protocol):
    origin: str

    def send(self, scheduled_ns: int, seq: int) -> str:
        """Send one ~200-byte message; its id."""
        ...

    def close(self) -> None: ...


class System(Protocol):
    name: str
    n: int
    tracker: Tracker

    def reset(self) -> Tracker: ...

    def sender(self, index: int) -> Sender: ...

    def pids(self) -> list[int]: ...


def _finish(
    system: System, tracker: Tracker, started: float, cpu0: float, skip_ns: int, sent: int
) -> Result:
    tracker.wait_outstanding_below(1, time.monotonic() + DRAIN_S)
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(system.pids()) - cpu0
    lat, missing = tracker.latencies_ms(skip_ns)
    deliveries = tracker.deliveries
    return {
        "sent": sent,
        "deliveries": deliveries,
        "missing": missing,
        "elapsed_s": elapsed,
        "deliveries_per_s": deliveries / elapsed if elapsed > 0 else math.nan,
        "cpu_us_per_delivery": cpu * 1e6 / deliveries if deliveries else math.nan,
        "latencies": lat,
        **summary(lat),
    }


def run_window(system: System, window: int, count: int, limit_s: float, warmup: int = 0) -> Result:
    """One sender keeps up to ``window`` messages not yet delivered everywhere."""
    tracker = system.reset()
    sender = system.sender(0)
    try:
        cpu0 = cpu_seconds(system.pids())
        started = time.monotonic()
        deadline = started + limit_s
        skip_ns = 0
        sent = 0
        for seq in range(count + warmup):
            if not tracker.wait_outstanding_below(window, deadline):
                break
            now = time.monotonic_ns()
            if seq == warmup:
                skip_ns = now
            tracker.expect(sender.send(now, seq), sender.origin, now)
            sent += 1
        return _finish(system, tracker, started, cpu0, skip_ns, sent)
    finally:
        sender.close()


def run_paced(
    system: System, rate: float, duration_s: float, senders: int, warmup_s: float
) -> Result:
    """``senders`` threads together send ``rate`` messages/s for ``duration_s``, open loop."""
    tracker = system.reset()
    clients: Sequence[Sender] = [system.sender(i) for i in range(senders)]
    total = int(rate * duration_s)
    interval_ns = int(1e9 / rate)
    counts = [0] * senders
    errors: list[str] = []
    cpu0 = cpu_seconds(system.pids())
    started = time.monotonic()
    t0 = time.monotonic_ns() + 50_000_000
    hard_stop = time.monotonic() + duration_s + 5.0

    def run(i: int) -> None:
        client = clients[i]
        for k in range(i, total, senders):
            sched = t0 + k * interval_ns
            wait = (sched - time.monotonic_ns()) / 1e9
            if wait > 0:
                time.sleep(wait)
            if time.monotonic() > hard_stop:
                return
            try:
                tracker.expect(client.send(sched, k), client.origin, sched)
            except Exception as exc:  # reported in the result; the run goes on
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(senders)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(duration_s + 10.0)
        result = _finish(system, tracker, started, cpu0, t0 + int(warmup_s * 1e9), sum(counts))
    finally:
        for client in clients:
            client.close()
    result["errors"] = errors[:5]
    result["offered_per_s"] = rate
    return result
