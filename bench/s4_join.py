"""S4 — joining a discussion that already holds a history (real processes on 127.0.0.1).

A ``chat-director`` and one ``chatd`` (node A, ``--profile lan``, ``--insecure``) start;
A's history is filled to 0, 1k, 10k, 100k messages (~200-byte texts, pipelined over one
control-socket connection). At each size a fresh ``chatd`` (node B) starts and we measure
on this host's monotonic clock from its process start until its ``status`` reports the
whole history as a member, and from its ``join.started`` to ``join.completed`` log lines
(ISO timestamps); then B is stopped. Everything started is stopped at the end.

    .venv/bin/python -m bench.s4_join [--quick]
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import UNLIMITED, cpu_seconds
from bench.s3_overlay import main
from chat_testing.control import ControlClient
from chat_testing.process import stop
from chat_testing.processes import Cluster, Node
from chat_testing.waiting import WaitTimeout, wait_until

SIZES = (0, 1_000, 10_000, 100_000)
QUICK_SIZES = (0, 1_000, 10_000)
TEXT_BYTES = 200
PIPELINE = 200  # requests written before reading their answers
FILL_BUDGET_S = 180.0  # wall-clock bound on filling, over all sizes
JOIN_TIMEOUT_S = 60.0
POLL_S = 0.01


def fill(sock: Path, start: int, target: int, deadline: float) -> int:
    """Send messages ``start``..``target``-1 through A; the count reached by ``deadline``."""
    count = start
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(str(sock))
        reader = conn.makefile("rb")
        while count < target and time.monotonic() < deadline:
            batch = min(PIPELINE, target - count)
            lines = []
            for i in range(count, count + batch):
                head = f"s4 message {i:07d} "
                text = head + "x" * (TEXT_BYTES - len(head))
                lines.append(json.dumps({"op": "send", "text": text}).encode() + b"\n")
            conn.sendall(b"".join(lines))
            for _ in range(batch):
                answer = json.loads(reader.readline() or b"null")
                if not isinstance(answer, dict) or not answer.get("ok"):
                    raise RuntimeError(f"send refused: {answer!r}")
            count += batch
        reader.close()
    return count


def wait_coordinator(node: Node, timeout: float = 20.0) -> None:
    def coordinating() -> bool:
        with ControlClient(node.socket) as client:
            return bool(client.request("status")["status"]["role"] == "coordinator")

    try:
        wait_until(coordinating, timeout, "node A to start the discussion", POLL_S)
    except WaitTimeout as exc:
        raise RuntimeError(f"{exc}\n{node.describe()}") from None


def history_bytes(sock: Path) -> int:
    """The size of A's history as JSON: the messages of the ``history`` op, compact."""
    with ControlClient(sock, timeout=60) as client:
        answer = client.request("history")
    return sum(len(json.dumps(m, separators=(",", ":"))) for m in answer["messages"])


def iso(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


def measure_join(
    cluster: Cluster, director: str, name: str, count: int, insecure: bool = True
) -> dict[str, Any]:
    """Start node B, wait until it is a member holding ``count`` messages, stop it."""
    wall0 = time.time()
    t0 = time.monotonic()
    node: Node = cluster.spawn_node(name, director, insecure=insecure, extra=UNLIMITED)
    client: ControlClient | None = None
    elapsed: float | None = None
    duplicates = 0
    try:
        while time.monotonic() - t0 < JOIN_TIMEOUT_S and node.alive:
            try:
                if client is None:
                    client = ControlClient(node.socket, timeout=10)
                status = client.request("status")["status"]
            except (OSError, ValueError, KeyError):
                if client is not None:
                    client.close()
                    client = None
                time.sleep(POLL_S)
                continue
            if status["role"] in ("member", "coordinator") and status["messages"] >= count:
                elapsed = time.monotonic() - t0
                time.sleep(0.5)  # let a late duplicate transfer land before reading counters
                duplicates = client.request("status")["status"]["counters"].get(
                    "messages.duplicate", 0
                )
                break
            time.sleep(POLL_S)
    finally:
        if client is not None:
            client.close()
    if elapsed is None:
        raise RuntimeError(f"{name} did not join with {count} messages\n{node.describe()}")
    started = node.wait_event("join.started", timeout=5)
    completed = node.wait_event("join.completed", timeout=5)
    ready = node.wait_event("node.ready", timeout=5)
    # CPU is less disturbed than wall-clock time by other load on the machine.
    cpu = cpu_seconds([node.pid])
    stop(node)
    return {
        "node_id": ready["node-id"],
        "process_to_history_s": round(elapsed, 3),
        "startup_s": round(iso(ready) - wall0, 3),
        "join_log_s": round(iso(completed) - iso(started), 3),
        "messages_at_join": completed.get("messages"),
        "joiner_duplicates": duplicates,
        "joiner_cpu_s": round(cpu, 2),
    }


def join_row(cluster: Cluster, director: str, origin: Node, i: int, size: int) -> dict[str, Any]:
    """One fresh joiner of a discussion holding ``size`` messages, and what it cost A."""
    size_bytes = history_bytes(origin.socket)
    row: dict[str, Any] = {"messages": size, "history_mb": round(size_bytes / 1e6, 2)}
    row.update(measure_join(cluster, director, f"b{i}", size))
    row["repairs_sent_by_a"] = sum(
        int(e.get("messages", 0))
        for e in origin.find_events("repair.sent", peer=row.pop("node_id"))
    )
    row["mb_per_s_join_log"] = (
        round(size_bytes / 1e6 / row["join_log_s"], 2) if size and row["join_log_s"] else None
    )
    row["mb_per_s_end_to_end"] = (
        round(size_bytes / 1e6 / row["process_to_history_s"], 2) if size else None
    )
    return row


def method(count: int, fill_time: float) -> list[str]:
    """How the figures were taken."""
    return [
        "Real processes on 127.0.0.1: chat-director --insecure --startup-grace 0 and "
        "chatd --insecure --profile lan; the history is filled on node A through one "
        f"control-socket connection ({PIPELINE} pipelined sends of {TEXT_BYTES}-byte texts "
        f"at a time): {count} messages in {fill_time:.1f} s "
        f"({count / fill_time if fill_time else 0:.0f} messages/s).",
        "process_to_history_s (the headline): host monotonic clock from the joiner's process "
        "start to its status (polled every 10 ms on its control socket) reporting role "
        "member and the whole history; it includes Python start-up (startup_s: start to "
        "node.ready, from the log's wall-clock timestamp).",
        "join_log_s: join.started to join.completed in the joiner's log (ISO timestamps, "
        "ms resolution): asking the coordinator, receiving the history, then the "
        "membership.",
        "history_mb: the history as compact JSON of the control protocol's message objects "
        "(the wire frames carry the same fields plus a signature); mb_per_s_* = history_mb "
        "/ the matching duration.",
        "joiner_cpu_s: the joiner's utime+stime from its start to its stop, Python start-up "
        "included; less disturbed than the durations by other load on the machine.",
        "A fresh joiner per size; each is stopped (SIGTERM) before the next fill.",
    ]


def run(quick: bool) -> dict[str, Any]:
    sizes = QUICK_SIZES if quick else SIZES
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    fill_time = 0.0
    with (
        tempfile.TemporaryDirectory(prefix="s4-", dir="/tmp") as tmp,
        Cluster(Path(tmp)) as cluster,
    ):
        director = cluster.start_director(insecure=True).url
        # A outranks every joiner, so no joiner takes the coordinator role over.
        origin = cluster.spawn_node(
            "a", director, insecure=True, extra=["--priority", "10", *UNLIMITED]
        )
        origin.wait_ready()
        wait_coordinator(origin)
        deadline = time.monotonic() + FILL_BUDGET_S
        count = 0
        for i, size in enumerate(sizes):
            f0 = time.monotonic()
            count = fill(origin.socket, count, size, deadline)
            fill_time += time.monotonic() - f0
            if count < size:
                notes.append(
                    f"filling stopped at {count} of {size} messages: the {FILL_BUDGET_S:g} s "
                    f"budget ran out ({count / fill_time:.0f} messages/s)."
                )
                break
            rows.append(join_row(cluster, director, origin, i, size))
        stop(origin)
    notes[:0] = method(count, fill_time)
    return {"scenario": "S4", "title": "Join with a history", "rows": rows, "notes": notes}


if __name__ == "__main__":
    main(run)
