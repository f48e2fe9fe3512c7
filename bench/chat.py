"""A director and N real ``chatd --bench-trace`` processes on 127.0.0.1, as a load ``System``.

Senders talk JSON Lines over the node's control socket (one connection per sender, kept
open); deliveries come from each node's ``bench.delivered`` stdout lines (host monotonic
clock). ``close`` stops every process it started.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import orjson

from bench.common import UNLIMITED, Child, Tracker, payload
from tests.e2e.harness import ControlClient, binary, child_env

START_TIMEOUT = 30.0
BENCH_SECRET = b"bench-group-secret-0123456789abcdef"


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
        self.env = child_env()
        self.nodes: list[Child] = []
        self.sockets: list[Path] = []
        self.director: Child | None = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _on_line(self, name: str) -> Any:
        def handle(raw: bytes) -> None:
            if b'"bench.delivered"' in raw:
                event = orjson.loads(raw)
                self.tracker.delivered(name, event["id"], event["t-ns"])

        return handle

    def _auth(self) -> list[str]:
        if not self.secure:
            return ["--insecure"]
        path = self.root / "secret"
        if not path.exists():
            path.write_bytes(BENCH_SECRET + b"\n")
            path.chmod(0o600)
        return ["--secret-file", str(path)]

    def _start(self) -> None:
        argv = [binary("chat-director"), "--host", "127.0.0.1", "--port", "0"]
        argv += ["--startup-grace", "0", *self._auth()]
        self.director = Child("chat-director", argv, env=self.env)
        ready = orjson.loads(self.director.wait_line(b'"director.ready"', START_TIMEOUT))
        url = f"http://127.0.0.1:{ready['port']}"
        for i in range(self.n):
            name = f"n{i}"
            sock = self.root / f"{name}.sock"
            argv = [binary("chatd"), "--director", url, "--name", name, "--socket", str(sock)]
            argv += ["--host", "127.0.0.1", "--port", "0", "--profile", "lan", *self._auth()]
            argv += ["--bench-trace", "--priority", str(self.n - i)]
            argv += UNLIMITED
            node = Child(f"chatd[{name}]", argv, self._on_line(name), env=self.env)
            self.nodes.append(node)
            self.sockets.append(sock)
            if i == 0:  # the first one founds the discussion; the others join it
                node.wait_line(b'"node.ready"', START_TIMEOUT)
        for node in self.nodes:
            node.wait_line(b'"node.ready"', START_TIMEOUT)
        self.wait_members()

    def status(self, index: int) -> dict[str, Any]:
        with ControlClient(self.sockets[index], timeout=5.0) as client:
            answer = client.request("status")
        return dict(answer.get("status", {}))

    def wait_members(self, timeout: float = START_TIMEOUT) -> None:
        """Until every node counts all ``n`` members."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = []
            for i in range(self.n):
                try:
                    counts.append(len(self.status(i).get("members", [])))
                except (OSError, ValueError):
                    counts.append(0)
            if all(c == self.n for c in counts):
                return
            time.sleep(0.1)
        raise TimeoutError(f"chat: members never reached {self.n} on every node: {counts}")

    def reset(self) -> Tracker:
        self.tracker = Tracker(self.n - 1)
        return self.tracker

    def sender(self, index: int) -> ChatSender:
        node = index % self.n
        return ChatSender(f"n{node}", self.sockets[node])

    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def close(self) -> None:
        for node in self.nodes:
            with suppress(OSError):
                node.popen.terminate()
        if self.nodes:
            with ThreadPoolExecutor(len(self.nodes)) as pool:
                list(pool.map(lambda c: c.stop(10.0), self.nodes))
        if self.director is not None:
            self.director.stop(10.0)
        self._dir.cleanup()

    def __enter__(self) -> ChatCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
