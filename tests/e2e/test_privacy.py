"""chat is private on the wire (issue 8), shown on the bytes between real processes.

Every ``chatd`` here that other nodes dial is started with ``--advertise`` set to a relay
of its own (``chat_testing.relay``) that forwards to its real port: nodes dial each other
at their advertised address only, so every peer connection passes through a relay, which
keeps every byte of it.

- **capture**: a director and three nodes, a token sent from each; with a group secret
  none of the texts, names, node-ids or addresses appears in the captured bytes, and with
  ``--insecure`` every one does (so the capture really sees what crosses the links).
- **man in the middle**: a relay that terminates TLS in front of the coordinator: without
  the secret (a self-signed certificate) it is refused by both ends; with the secret (a
  certificate for its own key from the group authority) the dialer refuses it by its pin.
  Either way no link forms through it and no chat text reaches it.
- **secure against insecure**: a secure node and an insecure one refuse each other in
  both directions, each logging why.

The capture is searched for the exact bytes: peer frames are JSON with every string
verbatim (node-ids are hex already, nothing is base64-encoded on the way), and a
dialer's masked websocket frames are unmasked first; the ``--insecure`` run shows that
this search finds every needle. Under TLS the bytes are ciphertext, in which no encoding
of a needle could survive either.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from chat_testing.control import history, send, status
from chat_testing.process import Event
from chat_testing.processes import DEFAULT_SECRET, Cluster, Node, on_each, wait_for_members
from chat_testing.relay import (
    Capture,
    Relay,
    RelayThread,
    Termination,
    insider,
    outsider,
    websocket_payloads,
)
from chat_testing.waiting import DEFAULT_TIMEOUT, overall_deadline, wait_until
from chatd.peer_port import REFUSED_PLAINTEXT, REFUSED_TLS, TLS_HANDSHAKE_RECORD

pytestmark = pytest.mark.e2e

# Three nodes hold three links; each carries TLS handshakes with certificates, hellos,
# membership, heartbeats and the messages: several KiB each way, whatever the mode.
MIN_BYTES_EACH_WAY = 4096
TEST_DEADLINE = 45.0

NOT_THIS_GROUP = "the peer's certificate is not from this group's secret"


def expect_dial_reason(failed: Event, reason: str) -> None:
    """``reason`` is in the ``peer.dial_failed`` line: the dialer says why, at once."""
    assert reason in failed["reason"], failed


def advertised_behind(relay: RelayThread, *, insecure: bool = False) -> list[str]:
    return ["--advertise", relay.address("ws" if insecure else "wss")]


def point(relay: RelayThread, node: Node) -> None:
    """Aim ``relay`` at the port ``node`` really listens on (from its ``node.ready``)."""
    listening = urlsplit(str(node.wait_event("node.ready")["address"]))
    assert listening.hostname is not None and listening.port is not None
    relay.retarget(listening.hostname, listening.port)


Captured = Sequence[tuple[str, Capture]]  # (whose relay, a connection through it)


def streams(captures: Captured) -> Iterator[tuple[str, bytes]]:
    """Each direction of each connection, raw, and (when it is a plaintext websocket)
    its frames' payloads unmasked: a dialer masks what it sends, which hides a text from
    a search of the raw bytes even without TLS."""
    for owner, capture in captures:
        for direction, data in (("to", capture.to_target), ("from", capture.to_client)):
            label = f"{owner}'s relay, connection {capture.number} ({direction} {owner})"
            yield label, data
            payloads = websocket_payloads(data)
            if payloads is not None:
                yield f"{label}, websocket payloads", payloads


def found_in(needle: bytes, captures: Captured) -> list[str]:
    return [label for label, data in streams(captures) if needle in data]


@pytest.mark.parametrize(
    "insecure",
    [pytest.param(False, id="secret"), pytest.param(True, id="insecure", marks=pytest.mark.slow)],
)
def test_capture_between_three_nodes(tmp_path: Path, insecure: bool) -> None:
    token = secrets.token_hex(8)
    names = [f"{name}-{token}" for name in ("alice", "bob", "carol")]
    texts = {name: f"privacy token {secrets.token_hex(16)} from {name}" for name in names}
    with ExitStack() as stack, overall_deadline(TEST_DEADLINE):
        relays = [stack.enter_context(RelayThread(Relay())) for _ in names]
        # Entered last, so closed first: the nodes stop before their relays.
        cluster = stack.enter_context(Cluster(tmp_path))
        director = cluster.start_director(insecure=insecure)
        nodes = [
            cluster.spawn_node(
                name,
                director.url,
                insecure=insecure,
                extra=advertised_behind(relay, insecure=insecure),
            )
            for name, relay in zip(names, relays, strict=True)
        ]
        for node, relay in zip(nodes, relays, strict=True):
            node.wait_ready()
            point(relay, node)
        wait_for_members(nodes)

        for node in nodes:
            assert send(node.socket, texts[node.name])["message"] == texts[node.name]
        wait_until(
            lambda: all(
                {m["message"] for m in messages} >= set(texts.values())
                for messages in on_each(nodes, history)
            ),
            DEFAULT_TIMEOUT,
            "every message at every node",
        )
        statuses = on_each(nodes, status)
        captures = [
            (node.name, c)
            for node, relay in zip(nodes, relays, strict=True)
            for c in relay.captures()
        ]

    # The relays were on every link: each node is dialed at its relay, and holds a link
    # to both others, encrypted exactly when the nodes have a secret.
    for relay, state in zip(relays, statuses, strict=True):
        assert state["public-address"] == relay.address("ws" if insecure else "wss")
        assert len(state["peers"]) == 2, state["peers"]
        assert all(peer["encrypted"] is not insecure for peer in state["peers"]), state["peers"]
    # ... and carried real traffic both ways: three links, each through one relay.
    to_nodes = sum(len(c.to_target) for _, c in captures)
    from_nodes = sum(len(c.to_client) for _, c in captures)
    assert to_nodes >= MIN_BYTES_EACH_WAY and from_nodes >= MIN_BYTES_EACH_WAY, (
        to_nodes,
        from_nodes,
    )
    busy = [c for _, c in captures if c.to_target and c.to_client]
    assert len(busy) >= 3, [(o, c.number, len(c.to_target), len(c.to_client)) for o, c in captures]

    # What a member list holds (membership frames, hellos): node-ids, names, addresses.
    needles = {
        **{f"text from {name}": text for name, text in texts.items()},
        **{f"name {s['name']}": s["name"] for s in statuses},
        **{f"node-id of {s['name']}": s["node-id"] for s in statuses},
        **{f"public address of {s['name']}": s["public-address"] for s in statuses},
    }
    seen = {what: found_in(needle.encode(), captures) for what, needle in needles.items()}
    if insecure:
        missing = [what for what, where in seen.items() if not where]
        assert not missing, f"plaintext capture does not show {missing}"
    else:
        leaked = {what: where for what, where in seen.items() if where}
        assert not leaked, f"in the clear on the wire: {leaked}"
        # Each connection spoke TLS from its first byte, both ways: no plaintext preamble.
        for capture in busy:
            assert capture.to_target[0] == capture.to_client[0] == TLS_HANDSHAKE_RECORD


@pytest.mark.parametrize("kind", ["outsider", pytest.param("insider", marks=pytest.mark.slow)])
def test_man_in_the_middle_is_refused(tmp_path: Path, kind: str) -> None:
    """bob, the coordinator, is advertised at a TLS-terminating relay; alice, joining,
    dials it and must refuse it, so she never joins and no chat text reaches the relay."""
    termination: Termination = outsider() if kind == "outsider" else insider(DEFAULT_SECRET)
    token = secrets.token_hex(16)
    with ExitStack() as stack, overall_deadline(TEST_DEADLINE):
        relay = stack.enter_context(RelayThread(Relay(termination=termination)))
        cluster = stack.enter_context(Cluster(tmp_path))
        director = cluster.start_director()
        bob = cluster.spawn_node(
            "bob", director.url, extra=[*advertised_behind(relay), "--priority", "10"]
        ).wait_ready()
        point(relay, bob)
        wait_until(
            lambda: status(bob.socket)["role"] == "coordinator",
            DEFAULT_TIMEOUT,
            "bob to start the discussion",
        )
        # What a join through the relay would have carried across it.
        send(bob.socket, f"for members only {token}")

        alice = cluster.spawn_node("alice", director.url).wait_ready()
        failed = alice.wait_event("peer.dial_failed", peer=bob.node_id)
        assert failed["address"] == relay.address("wss")
        if kind == "outsider":
            # bob is dialed by the relay with its self-signed certificate, and refuses it.
            refused = bob.wait_event("peer.connections_refused", reason="TLS handshake failed")
            assert NOT_THIS_GROUP in refused["error"], refused
        else:
            # The relay's certificate is valid for the group, but for its own key: the pin.
            assert (
                f"its certificate holds the key of node {termination.node_id},"
                f" not node {bob.node_id}'s: a man in the middle" in failed["reason"]
            ), failed
        alice_state, bob_state = on_each([alice, bob], status)
        captures = [("bob", c) for c in relay.captures()]

    assert alice_state["role"] not in ("coordinator", "member"), alice_state["role"]
    assert alice_state["peers"] == [] and bob_state["peers"] == []
    assert not bob.find_events("peer.connected") and not alice.find_events("peer.connected")
    assert captures, "alice never dialed the relay"
    plaintext = [label for label, data in streams(captures) if data]
    # The outsider: alice refused the relay's certificate, so it never had a session to
    # read. The insider had one, but alice checked the pin before sending a byte of her
    # own (not even the websocket upgrade): it read nothing from her either.
    assert all(not capture.to_target for _, capture in captures), captures
    if kind == "outsider":
        assert plaintext == [], plaintext
    for needle in (token, "for members only", alice.name, alice.node_id):
        assert not found_in(needle.encode(), captures), f"{needle!r} reached the relay"
    if kind == "outsider":
        expect_dial_reason(failed, NOT_THIS_GROUP)


def test_secure_and_insecure_nodes_refuse_each_other(tmp_path: Path) -> None:
    """Two discussions, each with its own director: in one an insecure node joins a
    secure coordinator (plaintext into TLS), in the other a secure node joins an insecure
    coordinator (TLS into plaintext). Both ends log why, and no link forms."""
    with ExitStack() as stack, overall_deadline(TEST_DEADLINE):
        cluster = stack.enter_context(Cluster(tmp_path))
        # An insecure director takes either kind of node: the nodes decide alone.
        first = cluster.start_director(insecure=True)
        second = cluster.start_director(insecure=True)
        secure_host = cluster.spawn_node("secure-host", first.url, extra=["--priority", "10"])
        insecure_host = cluster.spawn_node(
            "insecure-host", second.url, insecure=True, extra=["--priority", "10"]
        )
        hosts = [secure_host.wait_ready(), insecure_host.wait_ready()]
        wait_until(
            lambda: all(s["role"] == "coordinator" for s in on_each(hosts, status)),
            DEFAULT_TIMEOUT,
            "both hosts to start their discussions",
        )
        insecure_dialer = cluster.spawn_node("insecure-dialer", first.url, insecure=True)
        secure_dialer = cluster.spawn_node("secure-dialer", second.url)
        dialers = [insecure_dialer.wait_ready(), secure_dialer.wait_ready()]

        # Plaintext into a TLS port: refused with an HTTP 426 that the dialer reads.
        secure_host.wait_event("peer.connections_refused", reason=REFUSED_PLAINTEXT)
        to_secure = insecure_dialer.wait_event("peer.dial_failed", peer=secure_host.node_id)
        assert "HTTP 426: the peer speaks only TLS (it has a group secret)" in to_secure["reason"]

        # TLS into a plaintext port: refused; the dialer must say the peer may be insecure.
        insecure_host.wait_event("peer.connections_refused", reason=REFUSED_TLS)
        to_insecure = secure_dialer.wait_event("peer.dial_failed", peer=insecure_host.node_id)

        states = on_each([*hosts, *dialers], status)
    assert all(state["peers"] == [] for state in states), states
    for node in (*hosts, *dialers):
        assert not node.find_events("peer.connected"), node.describe()
    expect_dial_reason(to_insecure, "--insecure")
