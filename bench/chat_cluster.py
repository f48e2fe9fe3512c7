"""A director and N real ``chatd --bench-trace`` processes on 127.0.0.1, as a load ``System``.

Senders talk JSON Lines over the node's control socket (one connection per sender, kept
open); deliveries come from each node's ``bench.delivered`` stdout lines (host monotonic
clock), consumed as they are read. ``close`` stops every process it started.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from bench.common import UNLIMITED, Tracker, payload
from chat_testing.control import ControlClient
from chat_testing.process import LineHook
from chat_testing.processes import Cluster, Node
from chat_testing.waiting import wait_until

START_TIMEOUT = 30.0
BENCH_SECRET = b"bench-group-secret-0123456789abcdef"
KEPT_LINES = 10_000  # per stream of each process: the logs besides the delivery traces
PRIORITY_TOP = 1000  # above any group the suite forms


class ChatSender:
    def __init__(self, origin: str, sock: Path) -> None:
        self.origin = origin
        self._client = ControlClient(sock, timeout=10.0)

    def send(self, scheduled_ns: int, seq: int) -> str:
        answer = self._client.request("send", text=payload(f"c-{seq}", scheduled_ns))
        if not answer.get("ok"):
            raise RuntimeError(f"send refused: {answer.get('error')}")
        return str(answer["message"]["id"])

    def close(self) -> None:
        self._client.close()


class ChatCluster:
    """``n`` nodes joined into one discussion (``--profile lan``), ``--insecure`` (plain
    websockets, like the ngIRCd reference) unless ``secure``: then the director and every
    node share a group secret and peer links run TLS 1.3 (the product's default)."""

    def __init__(self, n: int, secure: bool = False) -> None:
        self.n = n
        self.secure = secure
        self.name = "chat-secure" if secure else "chat"
        self.tracker = Tracker(n - 1)
        self._dir = tempfile.TemporaryDirectory(prefix="bench-chat-")
        self.root = Path(self._dir.name)
        self.cluster = Cluster(self.root, BENCH_SECRET, max_lines=KEPT_LINES)
        self.nodes: list[Node] = []
        self.sockets: list[Path] = []
        self.url = ""
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _on_line(self, name: str) -> LineHook:
        def handle(raw: bytes) -> bool:
            if b'"bench.delivered"' not in raw:
                return False
            event = orjson.loads(raw)
            self.tracker.delivered(name, event["id"], event["t-ns"])
            return True

        return handle

    def _start(self) -> None:
        self.url = self.cluster.start_director(insecure=not self.secure, timeout=START_TIMEOUT).url
        for i in range(self.n):
            node = self.spawn()
            if i == 0:  # the first one founds the discussion; the others join it
                node.wait_ready(START_TIMEOUT)
        for node in self.nodes:
            node.wait_ready(START_TIMEOUT)
        self.wait_members()

    def spawn(self) -> Node:
        """One more node, not waited for; ``n`` counts it from now on. Priorities fall
        with the index, so node 0 founds the discussion and stays its coordinator."""
        i = len(self.nodes)
        name = f"n{i}"
        extra = ["--host", "127.0.0.1", "--port", "0", "--bench-trace"]
        extra += ["--priority", str(PRIORITY_TOP - i), *UNLIMITED]
        node = self.cluster.spawn_node(
            name, self.url, insecure=not self.secure, extra=extra, on_line=self._on_line(name)
        )
        self.nodes.append(node)
        self.sockets.append(node.socket)
        self.n = max(self.n, len(self.nodes))
        return node

    def drop_last(self) -> None:
        """Stop the newest node (one that could not join) and count it out."""
        self.nodes.pop().terminate(10.0)
        self.sockets.pop()
        self.n = len(self.nodes)

    def statuses(self) -> list[dict[str, Any]]:
        """Every node's status, queried in parallel; ``{}`` for one that did not answer."""

        def one(index: int) -> dict[str, Any]:
            try:
                return self.status(index)
            except (OSError, ValueError):
                return {}

        with ThreadPoolExecutor(min(16, len(self.nodes))) as pool:
            return list(pool.map(one, range(len(self.nodes))))

    def counters(self) -> dict[str, int]:
        """The nodes' status counters, summed."""
        total: dict[str, int] = {}
        for view in self.statuses():
            for key, value in view.get("counters", {}).items():
                total[key] = total.get(key, 0) + int(value)
        return total

    def status(self, index: int) -> dict[str, Any]:
        with ControlClient(self.sockets[index], timeout=5.0) as client:
            answer = client.request("status")
        return dict(answer.get("status", {}))

    def wait_members(self, timeout: float = START_TIMEOUT) -> None:
        """Until every node counts all ``n`` members."""

        def counts() -> list[int]:
            out = []
            for i in range(self.n):
                try:
                    out.append(len(self.status(i).get("members", [])))
                except (OSError, ValueError):
                    out.append(0)
            return out

        wait_until(
            lambda: all(c == self.n for c in counts()),
            timeout,
            f"chat: members to reach {self.n} on every node",
            interval=0.1,
        )

    def reset(self) -> Tracker:
        self.tracker = Tracker(self.n - 1)
        return self.tracker

    def sender(self, index: int) -> ChatSender:
        node = index % self.n
        return ChatSender(f"n{node}", self.sockets[node])

    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def close(self) -> None:
        """The nodes first, all at once, then the director."""
        if self.nodes:
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                list(pool.map(lambda node: node.terminate(10.0), self.nodes))
        self.cluster.close()
        self._dir.cleanup()

    def __enter__(self) -> ChatCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
