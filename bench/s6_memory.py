"""S6 memory: RSS of idle nodes, and bytes per held message (RSS growth after sending
many messages, divided by their count). ngIRCd's idle RSS is given for scale only (it
holds no history).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.chat_cluster import ChatCluster
from bench.common import Result, rss_bytes
from bench.irc import IrcGroup
from bench.load import run_window

N = 3
SETTLE_S = 2.0


def run(quick: bool) -> dict[str, Any]:
    count = 2000 if quick else 10000
    rows: list[Result] = []
    notes: list[str] = []
    with ChatCluster(N) as chat:
        time.sleep(SETTLE_S)
        idle = [rss_bytes(pid) for pid in chat.pids()]
        r = run_window(chat, 64, count, 120.0)
        time.sleep(SETTLE_S)
        after = [rss_bytes(pid) for pid in chat.pids()]
        held = [int(chat.status(i).get("counters", {}).get("messages.held", -1)) for i in range(N)]
        total = [int(chat.status(i).get("messages", -1)) for i in range(N)]
        sent = r["sent"]
        for i in range(N):
            rows.append(
                {
                    "system": "chat",
                    "node": f"n{i}",
                    "idle_rss_kib": idle[i] // 1024,
                    "rss_after_kib": after[i] // 1024,
                    "messages": total[i],
                    "held_back_counter": held[i],
                    "bytes_per_message": (after[i] - idle[i]) / sent if sent else None,
                }
            )
        growth = [(a - b) / sent for a, b in zip(after, idle, strict=True)] if sent else [0.0]
        notes.append(
            f"{sent} messages of ~200 bytes sent (window 64) through n0; "
            f"median growth {statistics.median(growth):.0f} B/message"
        )
    with IrcGroup(N) as irc:
        time.sleep(SETTLE_S)
        rows.append(
            {
                "system": "ngircd",
                "node": "server",
                "idle_rss_kib": rss_bytes(irc.server.pid) // 1024,
            }
        )
    notes.append("RSS = VmRSS from /proc/PID/status; Python's allocator keeps freed memory")
    return {"scenario": "S6", "title": "memory", "rows": rows, "notes": notes}
