"""A bug in the core costs one event, never the node (issue 7): the shell guards every
transition, logs it at error with a traceback, and closes only the link involved."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
import trio

from chat_testing.cluster import open_cluster
from chatd.core.node import Node
from tests.cluster.test_discussion import histories_equal, start


async def test_a_core_that_raises_on_a_frame_and_on_a_timer_keeps_running(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with structlog.testing.capture_logs() as logs, trio.fail_after(60):
        async with open_cluster(seed=3) as cluster:
            members = await start(cluster, ["a", "b", "c"])
            victim = members[2]
            real_frame, real_tick = Node.frame_received, Node.tick
            failures = {"frame": 3, "tick": 3}

            def frame_received(self: Node, *args: Any) -> Any:
                if self is victim.node and failures["frame"] > 0:
                    failures["frame"] -= 1
                    raise RuntimeError("a bug on a frame")
                return real_frame(self, *args)

            def tick(self: Node, now: float) -> Any:
                if self is victim.node and failures["tick"] > 0:
                    failures["tick"] -= 1
                    raise RuntimeError("a bug on a timer")
                return real_tick(self, now)

            monkeypatch.setattr(Node, "frame_received", frame_received)
            monkeypatch.setattr(Node, "tick", tick)
            await cluster.wait_until(lambda: failures == {"frame": 0, "tick": 0}, "the bugs hit")
            for i, member in enumerate(members):
                member.runtime.send_text(f"after the bugs {i}")
            await cluster.wait_until(lambda: histories_equal(members, 3), "everyone has all 3")
    failed = [e for e in logs if e["event"] == "core.failed"]
    assert {e["core_event"] for e in failed} == {"frame", "tick"}
    assert all(e["log_level"] == "error" and e.get("exc_info") for e in failed)
