"""Bad input against real processes: each gets a clear error and a log line, nothing crashes.

The shared discussion (alice, the coordinator, and bob) runs against a director started
``--insecure`` while the nodes hold the group secret. That is deliberate: a node with the
wrong secret then gets past the director, is told to join the coordinator and must be
refused by the coordinator itself, at the handshake. The director's own refusal of such a
node (a secure director checks every POST) is tested separately.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import orjson
import pytest
import trio
from attrs import define
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket, open_websocket_url

from chat.auth import Keyring, handshake_material
from chat.exits import EXIT_SECRET_REFUSED
from chat.identity import Identity
from chat.wire import PROTOCOL_VERSION, Auth, Hello, encode_frame
from chat_testing.control import chatctl, history, send, status, who
from chat_testing.process import stop
from chat_testing.processes import (
    DEFAULT_SECRET,
    Cluster,
    Director,
    Node,
    on_each,
    start_alice_and_bob,
)
from chat_testing.waiting import DEFAULT_TIMEOUT, overall_deadline, wait_until
from chatd.peer_port import REFUSED_PLAINTEXT, REFUSED_TLS_FAILED
from chatd.tls import peer_tls

pytestmark = pytest.mark.e2e

MARKER = "marmot-basalt-e2e-2c8d"


@define
class Setup:
    root: Path
    cluster: Cluster
    director: Director
    alice: Node  # the coordinator
    bob: Node

    @property
    def nodes(self) -> list[Node]:
        return [self.alice, self.bob]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("badinput")
    with Cluster(root) as cluster:
        with overall_deadline(40, "starting the discussion"):
            director = cluster.start_director(insecure=True)
            alice, bob = start_alice_and_bob(cluster, director.url)
        yield Setup(root, cluster, director, alice, bob)


@pytest.fixture(autouse=True)
def deadline() -> Iterator[None]:
    with overall_deadline(60):
        yield


def member_ids(node: Node) -> set[str]:
    return {m["node-id"] for m in status(node.socket)["members"]}


def check_flow(setup: Setup, label: str) -> None:
    """A message from each node reaches the other: the discussion still works."""
    ids = {send(n.socket, f"{MARKER} {label} from {n.name}")["id"] for n in setup.nodes}
    wait_until(
        lambda: all(ids <= {m["id"] for m in h} for h in on_each(setup.nodes, history)),
        DEFAULT_TIMEOUT,
        f"messages to flow between alice and bob ({label})",
    )


def one_stderr_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {result.stderr!r}"
    assert lines[0].startswith("chatctl: ") or lines[0].startswith("chatd: "), lines[0]
    return lines[0]


# The control socket ----------------------------------------------------------------------


class ControlConnection:
    """A raw client of the control socket: bytes in, JSON lines out."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(DEFAULT_TIMEOUT)
        self.sock.connect(str(path))
        self.buffer = b""

    def __enter__(self) -> ControlConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(self, data: bytes) -> dict[str, Any]:
        self.sock.sendall(data)
        return self.answer()

    def answer(self) -> dict[str, Any]:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed; got {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        value = json.loads(line)
        assert isinstance(value, dict)
        return value

    def closed_by_peer(self) -> bool:
        """Whether the daemon ended the connection with nothing more to say."""
        try:
            return self.buffer == b"" and self.sock.recv(1) == b""
        except ConnectionResetError:  # it closed with our unread bytes still queued
            return True


GARBAGE = [
    pytest.param(b"this is not json\n", "bad-request", "control.bad_request", id="not-json"),
    pytest.param(b"\xff\xfe{}\n", "bad-request", "control.bad_request", id="not-utf8"),
    pytest.param(b"[1, 2, 3]\n", "bad-request", "control.bad_request", id="json-array"),
    pytest.param(b'"status"\n', "bad-request", "control.bad_request", id="json-string"),
    pytest.param(b'{"op": "dance"}\n', "bad-request", "control.bad_request", id="unknown-op"),
    pytest.param(b'{"text": "hi"}\n', "bad-request", "control.bad_request", id="no-op"),
    pytest.param(b'{"op": "send"}\n', "bad-request", "control.bad_request", id="missing-text"),
    pytest.param(b'{"op": "send", "text": 42}\n', "bad-request", "control.bad_request", id="int"),
    pytest.param(
        b'{"op": "tail", "follow": "yes"}\n', "bad-request", "control.bad_request", id="str-bool"
    ),
    pytest.param(
        b'{"op": "status", "verbose": true}\n', "bad-request", "control.bad_request", id="extra"
    ),
    pytest.param(b'{"op": "send", "text": " "}\n', "bad-request", "control.refused", id="blank"),
    pytest.param(
        b'{"op": "tail", "follow": false, "last": -1}\n',
        "bad-request",
        "control.refused",
        id="negative-last",
    ),
    pytest.param(
        json.dumps({"op": "send", "text": MARKER + "x" * 5000}).encode() + b"\n",
        "too-large",
        "control.refused",
        id="text-over-4096",
    ),
]


@pytest.mark.parametrize(("data", "code", "event"), GARBAGE)
def test_control_socket_garbage(setup: Setup, data: bytes, code: str, event: str) -> None:
    alice = setup.alice
    before = len(alice.find_events(event))
    status_request = b'{"op": "status"}\n'
    with ControlConnection(alice.socket) as conn:
        messages = conn.request(status_request)["status"]["messages"]
        answer = conn.request(data)
        assert answer["ok"] is False
        assert answer["error"]["code"] == code
        assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]
        assert MARKER not in answer["error"]["message"]
        # The same connection goes on serving, and nothing was sent.
        after = conn.request(status_request)
        assert after["ok"] is True and after["status"]["node-id"] == alice.node_id
        assert after["status"]["messages"] == messages
    wait_until(
        lambda: len(alice.find_events(event)) > before,
        DEFAULT_TIMEOUT,
        f"alice to log {event}",
    )
    assert alice.find_events(event)[-1]["level"] in ("warning", "info")
    assert alice.alive


@pytest.mark.parametrize("kib", [70, 130])
def test_control_line_over_64_kib(setup: Setup, kib: int) -> None:
    # 70 KiB arrives with its newline in the second read, 130 KiB overflows the buffer
    # first: either way the answer is the same, and the connection ends.
    alice = setup.alice
    before = len(alice.find_events("control.bad_request"))
    line = json.dumps({"op": "send", "text": MARKER + "y" * (kib * 1024)}).encode() + b"\n"
    with ControlConnection(alice.socket) as conn:
        answer = conn.request(line)
        assert answer["ok"] is False and answer["error"]["code"] == "too-large", answer
        assert conn.closed_by_peer()  # the rest of the line is not parsed as requests
    wait_until(
        lambda: len(alice.find_events("control.bad_request")) > before,
        DEFAULT_TIMEOUT,
        "alice to log the oversized request",
    )
    assert status(alice.socket)["role"] == "coordinator"
    assert all(MARKER not in m["message"] for m in history(alice.socket))


# chatctl ------------------------------------------------------------------------------------


def test_send_over_4096_bytes_is_refused_and_nothing_is_sent(setup: Setup) -> None:
    bob = setup.bob
    before = on_each(setup.nodes, history)
    assert before[0] == before[1]
    # 4097 bytes in 2049 characters: the limit is on UTF-8 bytes.
    text = "é" * 2048 + "!"
    assert len(text.encode()) == 4097
    result = chatctl(bob.socket, "send", text)
    assert result.returncode == 13, result  # 10 + the too-large code
    line = one_stderr_line(result)
    assert "4096" in line and text not in line
    assert result.stdout == ""

    # Exactly 4096 bytes is fine; it follows the refused one from the same node, so once
    # it is everywhere, the refused one would be too had it been sent.
    pad = 4096 - len(MARKER.encode())
    probe = send(bob.socket, MARKER + "é" * (pad // 2) + "!" * (pad % 2))
    assert len(probe["message"].encode()) == 4096

    def arrived() -> list[list[dict[str, Any]]] | None:
        histories = on_each(setup.nodes, history)
        return histories if all(probe in h for h in histories) else None

    after = wait_until(arrived, DEFAULT_TIMEOUT, "the 4096-byte message to reach alice and bob")
    assert after[0] == after[1] == [*before[0], probe]


def test_chatctl_without_a_daemon(setup: Setup) -> None:
    missing = setup.root / "nobody.sock"
    result = chatctl(missing, "status")
    assert result.returncode == 69
    assert str(missing) in one_stderr_line(result)

    # A socket file nobody listens on (left by a killed daemon) is the same.
    stale = setup.root / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))
    try:
        result = chatctl(stale, "send", "hello")
        assert result.returncode == 69
        assert str(stale) in one_stderr_line(result)
    finally:
        stale.unlink()


# Peers without the secret -------------------------------------------------------------------


@pytest.mark.slow
def test_peer_with_the_wrong_secret_is_refused_at_the_handshake(setup: Setup) -> None:
    alice, bob = setup.alice, setup.bob
    members = member_ids(alice)
    refusals = len(alice.find_events("peer.connections_refused", reason=REFUSED_TLS_FAILED))
    wrong = setup.cluster.write_secret("wrong-secret", b"not-the-group-secret-at-all-42")
    mallory = setup.cluster.spawn_node("mallory", setup.director.url, secret_file=wrong)
    mallory.wait_ready()
    # The director sends it to alice; their TLS handshake fails, since each one's certificate
    # comes from another group authority than the other trusts.
    mallory.wait_event("join.started", coordinator=alice.node_id)
    wait_until(
        lambda: (
            len(alice.find_events("peer.connections_refused", reason=REFUSED_TLS_FAILED)) > refusals
        ),
        DEFAULT_TIMEOUT,
        "alice to refuse mallory at the TLS handshake",
    )
    failed = mallory.wait_event("peer.dial_failed", peer=alice.node_id)
    assert "not from this group's secret" in failed["reason"], failed

    check_flow(setup, "with an intruder knocking")
    assert member_ids(alice) == member_ids(bob) == members
    assert all(mallory.node_id not in {m["node-id"] for m in w} for w in on_each(setup.nodes, who))
    assert not alice.find_events("peer.connected", peer=mallory.node_id)
    view = status(mallory.socket)
    assert view["role"] == "joining" and view["messages"] == 0
    assert mallory.node_id not in {m["node-id"] for m in view["members"]}
    assert history(mallory.socket) == []
    assert stop(mallory) == 0, mallory.describe()


@pytest.mark.slow
def test_secure_director_refuses_a_node_with_the_wrong_secret(setup: Setup) -> None:
    """Refused on every attempt at start-up, the node says so (status, an error-level log
    line), then stops with one line and exit 4 rather than wait forever."""
    director = setup.cluster.start_director()
    wrong = setup.cluster.write_secret("other-secret", b"another-group-entirely-0000")
    started = time.monotonic()
    mallory = setup.cluster.spawn_node("mallory2", director.url, secret_file=wrong).wait_ready()
    refused = mallory.wait_event("director.refused_secret")
    assert refused["level"] == "error"
    assert refused["error"].startswith(
        f"the director refuses this node's group secret: director {director.url} answered"
        " POST /register_node with 403 forbidden: bad X-Chat-Proof"
    ), refused
    director.wait_event("director.request.refused", status=403, path="/register_node")
    try:
        view = status(mallory.socket)
    except AssertionError:
        pass  # it stopped already
    else:
        assert view["role"] == "joining" and view["members"] == []
        assert view["director"] == refused["error"]
    assert mallory.wait_exit() == EXIT_SECRET_REFUSED
    took = time.monotonic() - started
    assert 2 <= took < 15, took  # director_refusal_span (2 s), and not much more
    (line,) = mallory.stderr_lines
    assert line.startswith(f"chatd: {refused['error']} ("), line
    assert line.endswith("; is the group's secret the first line of --secret-file?)"), line
    assert mallory.find_events("node.gave_up", exit_code=EXIT_SECRET_REFUSED)
    assert not mallory.socket.exists()
    assert stop(director) == 0, director.describe()


# Raw websocket clients on a node's peer port -----------------------------------------------

# A script runs over an open websocket, as the node whose TLS certificate is for ``ident``.
Script = Callable[[Any, list[dict[str, Any]], Identity], Awaitable[None]]


@define
class Outcome:
    port: int = 0
    frames: list[dict[str, Any]] = attrs.field(factory=list)
    closed: str | None = None


def intruder_hello(ident: Identity, **changes: Any) -> Hello:
    hello = Hello(
        protocol_version=PROTOCOL_VERSION,
        node_id=ident.node_id,
        name="intruder",
        address="ws://127.0.0.1:1",
        public_address="ws://127.0.0.1:1",
        priority=1000,
        term=99,
        nonce="ab" * 16,
        public_key=ident.public_key,
        secure=True,
    )
    return attrs.evolve(hello, **changes)


async def say_nothing(ws: Any, frames: list[dict[str, Any]], ident: Identity) -> None:
    pass


async def send_garbage(ws: Any, frames: list[dict[str, Any]], ident: Identity) -> None:
    await ws.send_message(f"{MARKER} this is not a frame")


async def send_oversized(ws: Any, frames: list[dict[str, Any]], ident: Identity) -> None:
    await ws.send_message(b"x" * ((1 << 20) + 1))


def claim_id(node_id: str) -> Script:
    """A hello that claims ``node_id`` with a key of its own."""

    async def script(ws: Any, frames: list[dict[str, Any]], ident: Identity) -> None:
        await ws.send_message(encode_frame(intruder_hello(ident, node_id=node_id)))

    return script


async def bidi_name(ws: Any, frames: list[dict[str, Any]], ident: Identity) -> None:
    """A hello whose name would show reversed (U+202E): written by hand, since this code
    cannot build one."""
    hello = orjson.loads(encode_frame(intruder_hello(ident)))
    await ws.send_message(orjson.dumps({**hello, "name": "evil\u202egnp.exe"}))


async def hello_then_join(ws: Any, frames: list[dict[str, Any]], ident: Identity) -> None:
    await ws.send_message(encode_frame(intruder_hello(ident)))
    await ws.send_message(b'{"type": "join"}')


async def another_key(ws: Any, frames: list[dict[str, Any]], ident: Identity) -> None:
    """A hello for a consistent identity (key and id match) that is not the TLS session's."""
    await ws.send_message(encode_frame(intruder_hello(Identity.generate())))


async def forge_proof(ws: Any, frames: list[dict[str, Any]], ident: Identity) -> None:
    """A correct handshake but for the proof: a signature it can make, a proof it does not."""
    mine = intruder_hello(ident)
    await ws.send_message(encode_frame(mine))
    theirs = json.loads(await ws.get_message())
    frames.append(theirs)
    material = handshake_material(
        ident.node_id,
        theirs["node-id"],
        ident.public_key,
        theirs["public-key"],
        mine.nonce,
        theirs["nonce"],
    )
    auth = Auth(proof="00" * 32, signature=ident.sign_bytes(material))
    await ws.send_message(encode_frame(auth))


async def run_raw(address: str, script: Script, outcome: Outcome) -> None:
    """Run ``script`` as a member would connect: TLS with a certificate from the group
    authority (the intruder holds the secret), for a key of its own."""
    ident = Identity.generate()
    tls = peer_tls(ident, Keyring.of(DEFAULT_SECRET))
    parts = urlsplit(address)
    assert parts.hostname is not None and parts.port is not None
    async with open_websocket(
        parts.hostname, parts.port, "/", use_ssl=tls.client, connect_timeout=5, disconnect_timeout=2
    ) as ws:
        local = ws.local
        assert not isinstance(local, str)
        outcome.port = local.port
        try:
            await script(ws, outcome.frames, ident)
            while True:
                outcome.frames.append(json.loads(await ws.get_message()))
        except ConnectionClosed as exc:
            outcome.closed = str(exc.reason)


@pytest.mark.slow
def test_raw_websocket_intruders_are_refused(setup: Setup) -> None:
    alice = setup.alice
    address = status(alice.socket)["address"]

    async def main() -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        scripts: dict[str, Script] = {
            "silent": say_nothing,
            "garbage": send_garbage,
            "oversized": send_oversized,
            "spoofed-id": claim_id(alice.node_id),
            "no-auth": hello_then_join,
            "bad-proof": forge_proof,
            "not-the-tls-key": another_key,
            "bidi-name": bidi_name,
        }
        # The handshake timeout is 5 s: all at once, so the silent one costs that once.
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for name, script in scripts.items():
                    outcomes[name] = Outcome()
                    nursery.start_soon(run_raw, address, script, outcomes[name])
        return outcomes

    outcomes = trio.run(main)
    expected = {
        "silent": "handshake timed out",
        "garbage": "bad handshake frame",
        "oversized": "1009",
        "spoofed-id": "node-id is not the fingerprint of its public key",
        "no-auth": "expected auth, got join",
        "bad-proof": "wrong group secret",
        "not-the-tls-key": "hello names another key than the TLS certificate's",
        "bidi-name": "name: a name cannot contain a format character",
    }
    for name, outcome in outcomes.items():
        assert outcome.closed is not None, f"{name}: alice did not close the connection"
        assert outcome.frames and outcome.frames[0]["type"] == "hello", name
        assert all(f["type"] in ("hello", "auth") for f in outcome.frames), (name, outcome)
        event = alice.wait_event("peer.refused", remote=f"127.0.0.1:{outcome.port}")
        assert expected[name] in event["reason"], (name, event)
        assert event["level"] == "warning"
    # Nobody got in, and the discussion goes on.
    assert alice.alive and member_ids(alice) == {alice.node_id, setup.bob.node_id}
    check_flow(setup, "after raw intruders")


def test_strangers_without_the_secret_do_not_get_past_tls(setup: Setup) -> None:
    """A plaintext websocket is answered 426; a TLS client whose certificate is not from the
    group authority fails the handshake. Neither ever sees a hello (nor anything else)."""
    alice = setup.alice
    address = status(alice.socket)["address"]
    parts = urlsplit(address)
    assert parts.scheme == "wss" and parts.hostname is not None and parts.port is not None
    host, port = parts.hostname, parts.port

    async def plaintext() -> int:
        with pytest.raises(ConnectionRejected) as info:
            async with open_websocket_url(f"ws://{host}:{port}/", connect_timeout=5):
                pass
        return info.value.status_code

    async def self_signed() -> str:
        # A certificate for the stranger's own key, issued by an authority of its own. The
        # stranger does not check alice's certificate: it would give up first, and whether
        # its alert reached alice before its socket closed would be a race. So the verdict
        # is alice's, on the stranger's certificate, every time.
        stranger = peer_tls(Identity.generate(), Keyring.of(b"a-secret-of-another-group-00"))
        context = stranger.client
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        stream = await trio.open_tcp_stream(host, port)
        tls = trio.SSLStream(stream, context, server_hostname=host)
        try:
            with pytest.raises(trio.BrokenResourceError) as info:
                await tls.do_handshake()
                await tls.receive_some(1)  # TLS 1.3: the server's verdict on our certificate
        finally:
            await stream.aclose()
        return repr(info.value.__cause__)

    assert trio.run(plaintext) == 426
    alice.wait_event("peer.connections_refused", reason=REFUSED_PLAINTEXT)
    verdict = trio.run(self_signed)
    assert "ALERT" in verdict, verdict  # alice's alert: an authority it does not know
    alice.wait_event("peer.connections_refused", reason=REFUSED_TLS_FAILED)
    assert alice.alive and member_ids(alice) == {alice.node_id, setup.bob.node_id}


# A director that does not answer, a socket that cannot be made ------------------------------


def test_unreachable_director(setup: Setup) -> None:
    node = setup.cluster.spawn_node("lonely", "http://127.0.0.1:9").wait_ready()
    event = node.wait_event("director.failed")
    assert "127.0.0.1:9" in event["error"]
    view = status(node.socket)
    assert view["role"] == "joining" and view["director"] != "ok"
    result = chatctl(node.socket, "send", f"{MARKER} into the void")
    assert result.returncode == 14, result  # 10 + not-ready
    assert "not in a discussion" in one_stderr_line(result)
    assert history(node.socket) == []
    assert node.alive
    assert stop(node) == 0, node.describe()
    assert not node.socket.exists()


def test_socket_in_a_missing_directory(setup: Setup) -> None:
    where = setup.root / "no" / "such" / "dir"
    started = time.monotonic()
    node = setup.cluster.spawn_node("homeless", setup.director.url, socket=where / "x.sock")
    code = node.wait_exit(10)
    assert code != 0
    assert time.monotonic() - started < 10
    lines = node.stderr_lines
    assert len(lines) == 1 and lines[0].startswith("chatd: "), lines
    assert str(where) in lines[0]
    assert not node.find_events("node.ready")


def test_logs_never_contain_message_text(setup: Setup) -> None:
    check_flow(setup, "last words")  # some text went through, whatever ran before
    daemons = [p for p in setup.cluster.processes if isinstance(p, Node | Director)]
    leaks = [line for p in daemons for line in (*p.stdout_lines, *p.stderr_lines) if MARKER in line]
    assert leaks == [], f"{len(leaks)} log lines hold message text, e.g. {leaks[0][:300]}"
