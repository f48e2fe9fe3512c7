"""The director's traffic among real processes: a replayed registration, HTTPS with a pinned
certificate (and the wrong one), and the director's secret rotated with SIGHUP.

A real ``chat-director`` and real ``chatd`` processes. The replay test puts a recording TCP
relay between a chatd and the director, takes the registrations chatd really sent from the
recording, and sends them again byte for byte on a new connection.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chat_testing.control import status
from chat_testing.process import binary
from chat_testing.processes import Cluster, Director, Node, wait_for_members
from chat_testing.waiting import DEFAULT_TIMEOUT, overall_deadline, wait_until
from tests.director.certs import CertFiles, self_signed

pytestmark = pytest.mark.e2e

OLD = b"the-old-group-secret-0123456789"
NEW = b"the-new-group-secret-9876543210"


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    with overall_deadline(60):
        yield


# Helpers -------------------------------------------------------------------------------------


def start_director(cluster: Cluster, secret_file: Path, tls: CertFiles | None = None) -> str:
    """A ``chat-director`` with ``secret_file`` (HTTPS with ``tls``); its URL once ready."""
    argv = [binary("chat-director"), "--host", "127.0.0.1", "--port", "0"]
    argv += ["--startup-grace", "0", "--secret-file", str(secret_file)]
    if tls is not None:
        argv += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
    director = Director("chat-director", argv, cluster.env)
    cluster.processes.append(director)
    ready = director.wait_event("director.ready")
    return str(ready["address"])


def the_director(cluster: Cluster) -> Director:
    (director,) = (p for p in cluster.processes if isinstance(p, Director))
    return director


class RecordingRelay:
    """Forwards each TCP connection to ``target``, keeping every byte clients send."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # so the accept loop sees ``close``
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sent: list[bytearray] = []
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> RecordingRelay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closed.set()
        with self._lock:
            for sock in [self._listener, *self._sockets]:
                sock.close()

    def sent(self) -> list[bytes]:
        """What each connection's client sent so far."""
        with self._lock:
            return [bytes(record) for record in self._sent]

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            record = bytearray()
            with self._lock:
                self._sockets += [client, upstream]
                self._sent.append(record)
            threading.Thread(
                target=self._pump, args=(client, upstream, record), daemon=True
            ).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, record: bytearray | None) -> None:
        try:
            while chunk := source.recv(65536):
                if record is not None:
                    with self._lock:
                        record += chunk
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def split_requests(stream: bytes) -> list[bytes]:
    """The complete HTTP/1.1 requests in one connection's bytes, each exactly as sent."""
    requests: list[bytes] = []
    while True:
        head, separator, rest = stream.partition(b"\r\n\r\n")
        if not separator:
            return requests
        declared = re.search(rb"(?im)^content-length:\s*(\d+)\r?$", head)
        length = int(declared[1]) if declared else 0
        if len(rest) < length:
            return requests
        requests.append(head + separator + rest[:length])
        stream = rest[length:]


def send_raw(port: int, request: bytes) -> tuple[int, Any]:
    """Send ``request`` as is on a new connection; the answer's status and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while True:
            head, separator, body = answer.partition(b"\r\n\r\n")
            declared = re.search(rb"(?im)^content-length:\s*(\d+)\r?$", head)
            if separator and declared and len(body) >= int(declared[1]):
                break
            chunk = sock.recv(65536)
            assert chunk, f"the director hung up: {answer!r}"
            answer += chunk
    status_line = head.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), json.loads(body)


def registered(director: Director, node: Node) -> bool:
    """Whether the director has advised ``node`` (its ``register_node`` was accepted)."""
    return bool(director.find_events("director.node.advised", **{"node-id": node.node_id}))


# Tests ---------------------------------------------------------------------------------------


def test_a_replayed_registration_is_refused(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        url = start_director(cluster, cluster.secret_file)
        director = the_director(cluster)
        with RecordingRelay(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as relay:
            node = cluster.spawn_node("alice", f"http://127.0.0.1:{relay.port}").wait_ready()
            # Its registration (it starts the discussion) and its first heartbeat went through.
            director.wait_event(
                "director.node.advised", DEFAULT_TIMEOUT, **{"node-id": node.node_id}
            )
            director.wait_event(
                "director.coordinator.registered", DEFAULT_TIMEOUT, **{"node-id": node.node_id}
            )
            captured = [r for stream in relay.sent() for r in split_requests(stream)]
        posts = {r.split(b" ", 2)[1]: r for r in reversed(captured) if r.startswith(b"POST ")}
        assert set(posts) >= {b"/register_node", b"/register_coordinator"}, captured
        for path, request in sorted(posts.items()):
            assert re.search(
                rb"(?im)^x-chat-proof: v2 t=\d+ n=[0-9a-f]{32} mac=[0-9a-f]{64}\r$", request
            )
            code, body = send_raw(int(url.rsplit(":", 1)[1]), request)
            assert (code, body["error"]["code"]) == (403, "replayed"), (path, body)
            assert body["error"]["message"] == "replayed request: its proof has been used before"
            director.wait_event(
                "director.request.refused", path=path.decode(), status=403, reason="replayed"
            )
        # The node itself is unaffected: its own requests are fresh each time.
        assert status(node.socket)["director"] == "ok"


@pytest.mark.slow
def test_https_director_with_a_pinned_certificate(tmp_path: Path) -> None:
    mine, other = self_signed(tmp_path, "director"), self_signed(tmp_path, "impostor")
    with Cluster(tmp_path) as cluster:
        url = start_director(cluster, cluster.secret_file, tls=mine)
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", url), url
        pinned = ["--director-cert", str(mine.cert)]
        alice = cluster.spawn_node("alice", url, extra=[*pinned, "--priority", "10"]).wait_ready()
        assert alice.find_events("node.ready")[0]["director"] == url
        wait_until(
            lambda: status(alice.socket)["role"] == "coordinator", DEFAULT_TIMEOUT, "alice starts"
        )
        bob = cluster.spawn_node("bob", url, extra=pinned).wait_ready()
        wait_for_members([alice, bob])
        assert status(alice.socket)["director"] == status(bob.socket)["director"] == "ok"

        wrong = cluster.spawn_node("mallory", url, extra=["--director-cert", str(other.cert)])
        unpinned = cluster.spawn_node("carol", url)  # the system's CAs do not know it either
        wrong_pin = wrong.wait_ready().wait_event("director.failed")["error"]
        assert wrong_pin == (
            f"director {url}: certificate verify failed: the director's certificate is not"
            " the pinned one (self-signed certificate)"
        )
        no_pin = unpinned.wait_ready().wait_event("director.failed")["error"]
        assert no_pin.startswith(
            f"director {url}: certificate verify failed: self-signed certificate (checked"
            " against the system's CAs"
        )
        # Both keep asking, as for an unreachable director; the director never hears them.
        for node, error in [(wrong, wrong_pin), (unpinned, no_pin)]:
            seen = status(node.socket)
            assert (seen["role"], seen["director"]) == ("joining", error)
            assert not registered(the_director(cluster), node)
        assert {m["node-id"] for m in status(alice.socket)["members"]} == {
            alice.node_id,
            bob.node_id,
        }


def test_chatd_refuses_a_pin_it_cannot_use(tmp_path: Path) -> None:
    mine = self_signed(tmp_path, "director")
    with Cluster(tmp_path) as cluster:
        cases = [
            ("http://127.0.0.1:1", mine.cert, "--director-cert needs an https:// --director URL"),
            ("https://127.0.0.1:1", mine.key, "it holds no PEM certificate"),
            ("https://127.0.0.1:1", tmp_path / "none", "no such file or directory"),
        ]
        for number, (url, pin, why) in enumerate(cases):
            node = cluster.spawn_node(f"n{number}", url, extra=["--director-cert", str(pin)])
            assert node.wait_exit() == 2
            assert why in "\n".join(node.stderr_lines), node.describe()


@pytest.mark.slow
def test_sighup_rotates_the_directors_secret(tmp_path: Path) -> None:
    with Cluster(tmp_path, secret=OLD) as cluster:
        director_secret = cluster.write_secret("director-secret", OLD)
        url = start_director(cluster, director_secret)
        director = the_director(cluster)
        old_only, new_only = cluster.secret_file, cluster.write_secret("new-only", NEW)

        # The old secret's coordinator registers; the new secret is unknown yet.
        # The highest priority, so it stays coordinator when "middle" joins it (bully).
        veteran = cluster.spawn_node(
            "veteran", url, secret_file=old_only, extra=["--priority", "10"]
        ).wait_ready()
        wait_until(lambda: registered(director, veteran), DEFAULT_TIMEOUT, "veteran to register")
        newcomer = cluster.spawn_node("newcomer", url, secret_file=new_only).wait_ready()
        # Refused at start-up, it would stop after director_refusal_span (2 s); the director
        # takes the new secret well before that.
        refused = newcomer.wait_event("director.refused_secret")
        assert "403 forbidden: bad X-Chat-Proof" in refused["error"]

        # Step 1 and 2 on the director: the new secret added, and first.
        director_secret.write_bytes(NEW + b"\n" + OLD + b"\n")
        director.signal(signal.SIGHUP)
        reloaded = director.wait_event("director.secret.reloaded")
        assert (reloaded["secrets"], reloaded["first_changed"]) == (2, True)
        # The newcomer's next attempt gets in; the veteran's heartbeats still count.
        newcomer.wait_event("director.recovered")
        wait_until(lambda: registered(director, newcomer), DEFAULT_TIMEOUT, "newcomer in")
        # A node with only the old secret, started now, gets in as well.
        middle = cluster.spawn_node("middle", url, secret_file=old_only).wait_ready()
        wait_until(lambda: registered(director, middle), DEFAULT_TIMEOUT, "middle in")
        assert status(veteran.socket)["director"] == "ok"
        assert not veteran.find_events("director.failed")
        assert not veteran.find_events("director.refused_secret")

        assert status(veteran.socket)["role"] == "coordinator"

        # Step 3: the old secret removed; the veteran's next heartbeat is refused.
        director_secret.write_bytes(NEW + b"\n")
        director.signal(signal.SIGHUP)
        wait_until(
            lambda: len(director.find_events("director.secret.reloaded")) == 2,
            DEFAULT_TIMEOUT,
            "the second reload",
        )
        assert director.find_events("director.secret.reloaded")[1]["secrets"] == 1
        failed = veteran.wait_event("director.refused_secret")
        assert failed["error"] == (
            f"the director refuses this node's group secret: director {url} answered POST"
            " /register_coordinator with 403 forbidden: bad X-Chat-Proof: not this request"
            " signed with the group secret"
        )
        director.wait_event("director.request.refused", reason="bad-proof")
        assert status(veteran.socket)["director"] == failed["error"]
        # A node with only the old secret cannot even ask where to go any more.
        late = cluster.spawn_node("late", url, secret_file=old_only).wait_ready()
        refused = late.wait_event("director.refused_secret")
        assert "403 forbidden: bad X-Chat-Proof" in refused["error"]
        assert not registered(director, late)
