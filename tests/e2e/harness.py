"""Run the real ``chat-director``, ``chatd`` and ``chatctl`` binaries for end-to-end tests.

Every process is started with its stdout and stderr read by background threads that keep
each line in memory (so a pipe never fills and a test can inspect the whole log). A
``Cluster`` owns the processes it starts and, on exit, stops them all: SIGTERM first, then
SIGKILL for any straggler, so no process outlives a test.

Synchronisation is always by polling a condition with a deadline (``wait_until``), never by
a fixed sleep; a timed-out wait fails naming what it waited for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

# Long enough for a loaded 2-core machine; every wait still has a deadline.
DEFAULT_TIMEOUT = 20.0
POLL_INTERVAL = 0.05
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107

DEFAULT_SECRET = b"e2e-group-secret-0123456789abcdef"
# As the design defines a message, plus the sender's display name (issue 11).
MESSAGE_FIELDS = frozenset(
    {"id", "node-id", "name", "timestamp", "message", "vector-clock", "display"}
)

Event = dict[str, Any]
Message = dict[str, Any]


class WaitTimeout(AssertionError):
    """A condition did not come true in time."""


class DeadlineExceeded(AssertionError):
    """A test ran past its overall deadline."""


class GaveUp(AssertionError):
    """Raised by a ``wait_until`` predicate: waiting longer cannot help (ends the wait)."""


def binary(name: str) -> str:
    """The path of one of the project's console scripts, next to this interpreter first."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (pip install -e . in the virtualenv)")
    return found


def child_env() -> dict[str, str]:
    """The environment for a child: unbuffered, no service manager, no default socket."""
    env = dict(os.environ)
    for name in ("NOTIFY_SOCKET", "CHATD_SOCKET", "RUNTIME_DIRECTORY"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# Waiting -----------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = POLL_INTERVAL,
) -> T:
    """Poll ``predicate`` until it returns a truthy value, and return that value.

    An exception from ``predicate`` counts as "not yet" (a process may still be starting),
    except ``GaveUp``, which ends the wait at once. Past the deadline, ``WaitTimeout``
    names ``what`` and the last value or error.
    """
    deadline = time.monotonic() + timeout
    last: str = "never evaluated"
    while True:
        try:
            value = predicate()
        except GaveUp:
            raise
        except Exception as exc:
            last = f"last error: {type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = f"last value: {_short(value)}"
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} ({last})")
        time.sleep(interval)


def _short(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


@contextmanager
def overall_deadline(seconds: float, what: str = "the test") -> Iterator[None]:
    """Fail with ``DeadlineExceeded`` if the body runs longer than ``seconds``.

    A SIGALRM timer interrupts even a blocking call; main thread only, not nestable.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("overall_deadline works in the main thread only")
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        raise RuntimeError("overall_deadline cannot be nested")

    def expired(signum: int, frame: FrameType | None) -> None:
        raise DeadlineExceeded(f"{what} ran past its overall deadline of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Processes ---------------------------------------------------------------------------------


class Process:
    """A child process whose output lines are all kept in memory."""

    def __init__(self, label: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.label = label
        self.argv = list(argv)
        self._lock = threading.Lock()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
        )
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._readers = [
            threading.Thread(
                target=self._pump, args=(self.popen.stdout, self._stdout), daemon=True
            ),
            threading.Thread(
                target=self._pump, args=(self.popen.stderr, self._stderr), daemon=True
            ),
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream: Any, into: list[str]) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "backslashreplace").rstrip("\n")
                with self._lock:
                    into.append(line)

    def __repr__(self) -> str:
        return f"<{self.label} pid={self.pid} rc={self.returncode}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def stdout_lines(self) -> list[str]:
        with self._lock:
            return list(self._stdout)

    @property
    def stderr_lines(self) -> list[str]:
        with self._lock:
            return list(self._stderr)

    def events(self) -> list[Event]:
        """Every stdout line as a JSON object; a line that is not one fails the test."""
        events: list[Event] = []
        for line in self.stdout_lines:
            try:
                event = json.loads(line)
            except ValueError:
                raise AssertionError(f"{self.label}: stdout line is not JSON: {line!r}") from None
            if not isinstance(event, dict):
                raise AssertionError(f"{self.label}: stdout line is not an object: {line!r}")
            events.append(event)
        return events

    def find_events(self, name: str, **fields: Any) -> list[Event]:
        """The log events called ``name`` whose fields include ``fields``."""
        return [
            e
            for e in self.events()
            if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
        ]

    def wait_event(self, name: str, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> Event:
        """The first log event ``name`` with ``fields``, waiting for it to appear."""
        described = f"{self.label} to log {name}" + (f" with {fields}" if fields else "")

        def found() -> Event | None:
            matches = self.find_events(name, **fields)
            if matches:
                return matches[0]
            if not self.alive and self._drained():
                raise GaveUp(
                    f"{self.label} exited ({self.returncode}) before logging {name}\n"
                    + self.describe()
                )
            return None

        try:
            return wait_until(found, timeout, described)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{self.describe()}") from None

    def _drained(self) -> bool:
        return not any(reader.is_alive() for reader in self._readers)

    def wait_exit(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """The exit status, once the process has exited and its output is read."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(
                f"{self.label} did not exit within {timeout:g}s\n{self.describe()}"
            ) from None
        for reader in self._readers:
            reader.join(timeout)
        return code

    def signal(self, signum: int) -> None:
        if self.alive:
            self.popen.send_signal(signum)

    def kill(self) -> None:
        if self.alive:
            self.popen.kill()
        self.popen.wait()
        for reader in self._readers:
            reader.join(5)

    def describe(self, lines: int = 15) -> str:
        """The tail of the process's output, for failure messages."""
        out = "\n    ".join(self.stdout_lines[-lines:])
        err = "\n    ".join(self.stderr_lines[-lines:])
        return f"--- {self!r}\n  stdout:\n    {out}\n  stderr:\n    {err}"


class Director(Process):
    """A ``chat-director`` listening on a port it picked; ``url`` once it is ready."""

    url: str
    port: int

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> Self:
        ready = self.wait_event("director.ready", timeout)
        self.port = int(ready["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        return self


class Node(Process):
    """A ``chatd`` with its own control socket."""

    node_id: str

    def __init__(
        self, name: str, socket: Path, argv: Sequence[str], env: Mapping[str, str]
    ) -> None:
        self.name = name
        self.socket = socket
        super().__init__(f"chatd[{name}]", argv, env)

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> Self:
        ready = self.wait_event("node.ready", timeout)
        self.node_id = str(ready["node-id"])
        return self


def stop(process: Process, timeout: float = DEFAULT_TIMEOUT) -> int:
    """SIGTERM, then the exit status (a process that does not exit in time is killed)."""
    process.signal(signal.SIGTERM)
    try:
        return process.wait_exit(timeout)
    except WaitTimeout:
        process.kill()
        raise


class Cluster:
    """Starts processes under ``root`` and stops every one of them on ``close``."""

    def __init__(self, root: Path, secret: bytes = DEFAULT_SECRET) -> None:
        self.root = root
        self.env = child_env()
        self.processes: list[Process] = []
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
        path = self.root / filename
        path.write_bytes(secret + b"\n")
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
    ) -> Director:
        """A director on ``port`` (0: a free one); ``startup_grace=None`` keeps its default."""
        secret = secret_file or self.secret_file
        auth = ["--insecure"] if insecure else ["--secret-file", str(secret)]
        grace = [] if startup_grace is None else ["--startup-grace", f"{startup_grace:g}"]
        argv = [
            binary("chat-director"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *grace,
            *auth,
        ]
        director = Director("chat-director", argv, self.env)
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
    ) -> Node:
        """Start a chatd without waiting for it (see ``Node.wait_ready``)."""
        sock = socket if socket is not None else self.root / f"{name}.sock"
        if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
            raise RuntimeError(f"socket path too long for AF_UNIX: {sock}")
        auth = (
            ["--insecure"] if insecure else ["--secret-file", str(secret_file or self.secret_file)]
        )
        argv = [
            binary("chatd"),
            "--director",
            director,
            "--name",
            name,
            "--socket",
            str(sock),
            "--profile",
            "lan",
            *auth,
            *extra,
        ]
        node = Node(name, sock, argv, self.env)
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


# chatctl -----------------------------------------------------------------------------------


def chatctl(
    sock: Path, *args: str, timeout: float = DEFAULT_TIMEOUT, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``chatctl --socket SOCK ARGS``; never raises for a non-zero exit."""
    return subprocess.run(
        [binary("chatctl"), "--socket", str(sock), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        check=False,
    )


def on_each(nodes: Sequence[Node], query: Callable[[Path], T]) -> list[T]:
    """``query(node.socket)`` for every node at once (one chatctl per node, in parallel)."""
    if len(nodes) <= 1:
        return [query(node.socket) for node in nodes]
    with ThreadPoolExecutor(len(nodes)) as pool:
        return list(pool.map(query, [node.socket for node in nodes]))


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(result.args[1:])} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


def json_lines(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        value = json.loads(line)
        assert isinstance(value, dict), f"not a JSON object: {line!r}"
        out.append(value)
    return out


def status(sock: Path) -> dict[str, Any]:
    """``chatctl status --json``: one object."""
    (value,) = json_lines(_ok(chatctl(sock, "status", "--json")))
    return value


def history(sock: Path) -> list[Message]:
    """``chatctl history --json``: the messages in canonical order."""
    return json_lines(_ok(chatctl(sock, "history", "--json")))


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


def who(sock: Path) -> list[dict[str, Any]]:
    """``chatctl who --json``: the member records."""
    return json_lines(_ok(chatctl(sock, "who", "--json")))


def send(sock: Path, text: str) -> Message:
    """``chatctl send --json TEXT``: the message as the node accepted it."""
    (value,) = json_lines(_ok(chatctl(sock, "send", "--json", text)))
    return value


class ControlClient:
    """A raw JSON Lines connection kept open on a node's control socket.

    For traffic at a steady rate: one connection carries every request, where ``chatctl``
    would start a process per message. Not thread-safe; use one per thread.
    """

    def __init__(self, sock: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(str(sock))
        except BaseException:
            self._sock.close()
            raise
        self._reader = self._sock.makefile("rb")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request; the answer object (``ok`` true or false)."""
        self._sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
        line = self._reader.readline()
        if not line:
            raise ConnectionError("chatd closed the control connection")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise AssertionError(f"not a JSON object: {line!r}")
        return answer

    def close(self) -> None:
        self._reader.close()
        self._sock.close()


@dataclass
class Sent:
    """One send of a ``Traffic`` run: what the node answered, and when (host monotonic)."""

    node: str
    text: str
    at: float
    id: str | None = None  # the message id, when the node acknowledged the send
    error: str | None = None  # else the error code or exception


class Traffic:
    """Every ``interval`` seconds, a message through each of ``nodes``, recording each answer.

    One thread and one open ``ControlClient`` per node; every thread stops on ``stop()`` or
    at the latest after ``limit`` seconds. Use as a context manager: it stops on exit.
    """

    def __init__(
        self, nodes: Sequence[Node], interval: float, marker: str, limit: float = 60.0
    ) -> None:
        self.nodes = list(nodes)
        self.interval = interval
        self.marker = marker
        self.limit = limit
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._sent: list[Sent] = []
        self._threads = [
            threading.Thread(target=self._run, args=(node,), daemon=True) for node in self.nodes
        ]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, node: Node) -> None:
        deadline = time.monotonic() + self.limit
        client: ControlClient | None = None
        number = 0
        try:
            while time.monotonic() < deadline and not self._halt.is_set():
                number += 1
                text = f"{self.marker} {node.name} #{number}"
                record = Sent(node.name, text, 0.0)
                try:
                    if client is None:
                        client = ControlClient(node.socket, timeout=5.0)
                    answer = client.request("send", text=text)
                except (OSError, ValueError) as exc:
                    record.error = f"{type(exc).__name__}: {exc}"
                    if client is not None:
                        client.close()
                        client = None
                else:
                    if answer.get("ok"):
                        record.id = str(answer["message"]["id"])
                    else:
                        record.error = str(answer.get("error", {}).get("code", answer))
                record.at = time.monotonic()
                with self._lock:
                    self._sent.append(record)
                self._halt.wait(self.interval)
        finally:
            if client is not None:
                client.close()

    def stop(self, timeout: float = 10.0) -> list[Sent]:
        """Stop every sender (waiting for the send in flight); every send made."""
        self._halt.set()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout)
        return self.sent

    @property
    def sent(self) -> list[Sent]:
        with self._lock:
            return list(self._sent)

    def acked(self, nodes: Sequence[Node] | None = None) -> dict[str, Sent]:
        """The acknowledged sends (through ``nodes``, default all), by message id."""
        names = None if nodes is None else {n.name for n in nodes}
        return {
            s.id: s for s in self.sent if s.id is not None and (names is None or s.node in names)
        }


# Checks ------------------------------------------------------------------------------------


def http_get(url: str, accept_json: bool = True, timeout: float = 5.0) -> tuple[int, Any]:
    """GET ``url`` without following redirects; the status and the decoded JSON body."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    headers = {"Accept": "application/json"} if accept_json else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (e.g. a test's tmp dir)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def sequence_number(message: Message) -> int:
    """A message's position among its origin's messages (its own vector-clock entry)."""
    return int(message["vector-clock"][message["node-id"]])


def causal_violations(messages: Sequence[Message]) -> list[str]:
    """Pairs shown in an order that contradicts causality (empty when the order is causal).

    A message depends on every message of origin ``n`` numbered up to its clock entry for
    ``n`` (for its own origin: the earlier ones). Dependencies not in ``messages`` are
    ignored, so a window of a longer stream can be checked.
    """
    position = {(m["node-id"], sequence_number(m)): i for i, m in enumerate(messages)}
    problems: list[str] = []
    for i, message in enumerate(messages):
        for origin, count in message["vector-clock"].items():
            top = count - 1 if origin == message["node-id"] else count
            for seq in range(1, top + 1):
                j = position.get((origin, seq))
                if j is not None and j > i:
                    problems.append(
                        f"{message['id']} (#{i}) shown before its dependency "
                        f"{messages[j]['id']} (#{j})"
                    )
    return problems


def canonical_key(message: Message) -> tuple[int, str, str]:
    """The design's canonical order: sum of the vector clock, then node-id, then id."""
    return (sum(message["vector-clock"].values()), message["node-id"], message["id"])


def check_message_shape(message: Message) -> None:
    """The fields of a message object as the design defines them."""
    assert set(message) == MESSAGE_FIELDS, f"fields {sorted(message)}"
    for name in ("id", "node-id", "name", "timestamp", "message", "display"):
        assert isinstance(message[name], str) and message[name], f"{name}: {message[name]!r}"
    when = datetime.fromisoformat(message["timestamp"])
    assert when.utcoffset() == timedelta(0), f"timestamp not UTC: {message['timestamp']}"
    assert abs(datetime.now(when.tzinfo) - when) < timedelta(minutes=10), message["timestamp"]
    clock = message["vector-clock"]
    assert isinstance(clock, dict) and clock, f"vector-clock: {clock!r}"
    assert all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in clock.items())
    assert clock.get(message["node-id"], 0) >= 1, "the clock does not count its origin"
