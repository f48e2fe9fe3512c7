"""The real ``chat-director`` and ``chatd`` as child processes, owned by a ``Cluster``.

A ``Cluster`` starts every process under one directory (control sockets, secret files)
and, on ``close``, stops them all: SIGTERM first, then SIGKILL for any straggler, so no
process outlives a test, a benchmark or the demo.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from chat_testing.control import status
from chat_testing.process import LineHook, Process, binary, child_env
from chat_testing.waiting import DEFAULT_TIMEOUT, wait_until

T = TypeVar("T")

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107
DEFAULT_SECRET = b"e2e-group-secret-0123456789abcdef"


class Director(Process):
    """A ``chat-director`` listening on a port it picked; ``url`` once it is ready."""

    url: str
    address: str  # as the director logs it
    port: int

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> Self:
        ready = self.wait_event("director.ready", timeout)
        self.port = int(ready["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.address = str(ready["address"])
        return self


class Node(Process):
    """A ``chatd`` with its own control socket."""

    node_id: str

    def __init__(
        self,
        name: str,
        socket: Path,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        on_line: LineHook | None = None,
        max_lines: int | None = None,
        new_session: bool = False,
    ) -> None:
        self.name = name
        self.socket = socket
        super().__init__(
            f"chatd[{name}]",
            argv,
            env,
            on_line=on_line,
            max_lines=max_lines,
            new_session=new_session,
        )

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> Self:
        ready = self.wait_event("node.ready", timeout)
        self.node_id = str(ready["node-id"])
        return self


class Cluster:
    """Starts processes under ``root`` and stops every one of them on ``close``.

    ``max_lines`` bounds the output kept per stream of each process (long runs);
    ``new_session`` keeps a terminal's Ctrl-C from reaching the children (the demo).
    """

    def __init__(
        self,
        root: Path,
        secret: bytes = DEFAULT_SECRET,
        *,
        max_lines: int | None = None,
        new_session: bool = False,
    ) -> None:
        self.root = root
        self.env = child_env()
        self.processes: list[Process] = []
        self._max_lines = max_lines
        self._new_session = new_session
        self.secret_file = self.write_secret("secret", secret)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write_secret(self, filename: str, secret: bytes) -> Path:
        """``secret`` in a file only its owner can read, from the start."""
        path = self.root / filename
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(secret + b"\n")
        path.chmod(0o600)
        return path

    def spawn(self, label: str, argv: Sequence[str]) -> Process:
        """Any other child (e.g. ``chatctl tail -f``), stopped with the rest."""
        process = Process(label, argv, self.env)
        self.processes.append(process)
        return process

    def start_director(
        self,
        *,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        port: int = 0,
        startup_grace: float | None = 0.0,
        secret_file: Path | None = None,
        on_line: LineHook | None = None,
    ) -> Director:
        """A director on ``port`` (0: a free one); ``startup_grace=None`` keeps its default."""
        secret = secret_file or self.secret_file
        auth = ["--insecure"] if insecure else ["--secret-file", str(secret)]
        grace = [] if startup_grace is None else ["--startup-grace", f"{startup_grace:g}"]
        argv = [binary("chat-director"), "--host", "127.0.0.1", "--port", str(port), *grace]
        director = Director(
            "chat-director",
            [*argv, *auth],
            self.env,
            on_line=on_line,
            max_lines=self._max_lines,
            new_session=self._new_session,
        )
        self.processes.append(director)
        return director.wait_ready(timeout)

    def spawn_node(
        self,
        name: str,
        director: str,
        *,
        secret_file: Path | None = None,
        insecure: bool = False,
        socket: Path | None = None,
        extra: Sequence[str] = (),
        on_line: LineHook | None = None,
    ) -> Node:
        """Start a chatd without waiting for it (see ``Node.wait_ready``)."""
        sock = socket if socket is not None else self.root / f"{name}.sock"
        if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
            raise RuntimeError(f"socket path too long for AF_UNIX: {sock}")
        auth = (
            ["--insecure"] if insecure else ["--secret-file", str(secret_file or self.secret_file)]
        )
        argv = [binary("chatd"), "--director", director, "--name", name, "--socket", str(sock)]
        argv += ["--profile", "lan", *auth, *extra]
        node = Node(
            name,
            sock,
            argv,
            self.env,
            on_line=on_line,
            max_lines=self._max_lines,
            new_session=self._new_session,
        )
        self.processes.append(node)
        return node

    def start_nodes(
        self, director: str, names: Sequence[str], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Node]:
        """Start several chatd at once and wait until each listens on its socket."""
        nodes = [self.spawn_node(name, director) for name in names]
        return [node.wait_ready(timeout) for node in nodes]

    @property
    def nodes(self) -> list[Node]:
        return [p for p in self.processes if isinstance(p, Node)]

    def log_lines(self) -> list[str]:
        """Every line any process of the cluster wrote, stdout and stderr."""
        return [line for p in self.processes for line in (*p.stdout_lines, *p.stderr_lines)]

    def close(self, timeout: float = 10.0) -> None:
        """Stop everything: SIGTERM (nodes before the director), then SIGKILL stragglers."""
        order = [p for p in self.processes if not isinstance(p, Director)] + [
            p for p in self.processes if isinstance(p, Director)
        ]
        for process in order:
            process.signal(signal.SIGCONT)  # a paused process could not act on SIGTERM
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in order:
            with suppress(subprocess.TimeoutExpired):
                process.popen.wait(max(0.0, deadline - time.monotonic()))
        for process in order:
            process.kill()


def on_each(nodes: Sequence[Node], query: Callable[[Path], T]) -> list[T]:
    """``query(node.socket)`` for every node at once (one chatctl per node, in parallel)."""
    if len(nodes) <= 1:
        return [query(node.socket) for node in nodes]
    with ThreadPoolExecutor(len(nodes)) as pool:
        return list(pool.map(query, [node.socket for node in nodes]))


def wait_for_members(nodes: Sequence[Node]) -> None:
    """Wait until every node of ``nodes`` is in the discussion and they are its members."""
    expected = {n.node_id for n in nodes}
    wait_until(
        lambda: all(
            s["role"] in ("coordinator", "member")
            and {m["node-id"] for m in s["members"]} == expected
            for s in on_each(nodes, status)
        ),
        DEFAULT_TIMEOUT,
        f"{', '.join(n.name for n in nodes)} to be the members",
    )


def start_alice_and_bob(cluster: Cluster, director: str) -> tuple[Node, Node]:
    """alice first and highest, so that she is and stays the coordinator (a higher joiner
    would take over: bully), then bob; returns once both are members."""
    alice = cluster.spawn_node("alice", director, extra=["--priority", "10"]).wait_ready()
    wait_until(
        lambda: status(alice.socket)["role"] == "coordinator",
        DEFAULT_TIMEOUT,
        "alice to start the discussion",
    )
    bob = cluster.spawn_node("bob", director).wait_ready()
    wait_for_members([alice, bob])
    return alice, bob
