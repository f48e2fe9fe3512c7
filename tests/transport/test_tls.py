"""TLS on peer links, on real loopback sockets in one process: who gets through, and why
the others do not (both ends say so)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chat.auth import (
    MAX_SECRET_FILE_BYTES,
    MAX_SECRETS,
    Keyring,
    SecretError,
    load_keyring,
    peer_proof,
)
from chat.identity import Identity, fingerprint
from chatd import tally
from chatd.__main__ import main as chatd_main
from chatd.peer_port import REFUSED_PLAINTEXT, REFUSED_TLS, REFUSED_TLS_FAILED
from chatd.tls import (
    certificate_key,
    certificate_node_id,
    group_authority,
    node_certificate,
    peer_tls,
)
from chatd.transport import (
    Channel,
    ChannelClosed,
    ConnectError,
    WebSocketTransport,
)
from chatd.websocket import CONNECT_TIMEOUT

S1 = b"first-group-secret-0123456789"
S2 = b"second-group-secret-012345678"


@pytest.fixture(autouse=True)
def report_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tally, "REPORT_INTERVAL", 0.1)


# The keyring ------------------------------------------------------------------------------


def test_a_secret_file_holds_a_keyring(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"# rotation, step 2\n\n  " + S2 + b"  \n" + S1 + b"\n" + S2 + b"\n")
    keyring = load_keyring(path)
    assert keyring.secrets == (S2, S1)  # stripped, comments and the repeat dropped
    assert keyring.primary == S2
    # A proof with either secret is accepted; with a third one, not.
    assert keyring.accepts(lambda s: peer_proof(s, b"m"), peer_proof(S1, b"m"))
    assert keyring.accepts(lambda s: peer_proof(s, b"m"), peer_proof(S2, b"m"))
    assert not keyring.accepts(lambda s: peer_proof(s, b"m"), peer_proof(b"x" * 20, b"m"))


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "holds no secret"),
        (b"# only a comment\n\n", "holds no secret"),
        (S1 + b"\nshort\n", "line 2: 5 bytes; a secret needs at least 16"),
        (
            b"\n".join(bytes([65 + i]) * 16 for i in range(MAX_SECRETS + 1)),
            f"holds {MAX_SECRETS + 1} secrets; at most {MAX_SECRETS}",
        ),
    ],
)
def test_a_bad_secret_file_is_a_clear_error(tmp_path: Path, content: bytes, error: str) -> None:
    path = tmp_path / "secret"
    path.write_bytes(content)
    with pytest.raises(SecretError, match=error):
        load_keyring(path)
    with pytest.raises(SecretError, match="cannot read secret file"):
        load_keyring(tmp_path / "missing")


def test_a_huge_secret_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(S1 + b"\n" + b"#" * MAX_SECRET_FILE_BYTES)
    with pytest.raises(SecretError, match=f"over {MAX_SECRET_FILE_BYTES} bytes"):
        load_keyring(path)
    with pytest.raises(SecretError, match="over"):
        load_keyring("/dev/zero")  # endless: read only up to the bound


# Certificates -----------------------------------------------------------------------------


def test_the_group_authority_is_the_same_everywhere_and_differs_between_secrets() -> None:
    one = group_authority(S1).certificate.public_bytes(serialization.Encoding.DER)
    again = group_authority(S1).certificate.public_bytes(serialization.Encoding.DER)
    assert one == again
    assert group_authority(S2).certificate.subject != group_authority(S1).certificate.subject


def test_a_node_certificate_is_for_its_own_key_and_verifies_under_the_authority() -> None:
    ident = Identity.generate()
    authority = group_authority(S1)
    cert = node_certificate(ident, authority)
    der = cert.public_bytes(serialization.Encoding.DER)
    assert certificate_node_id(der) == ident.node_id
    key = certificate_key(der)
    assert key is not None and fingerprint(key) == ident.node_id
    cert.verify_directly_issued_by(authority.certificate)
    with pytest.raises(Exception):  # noqa: B017 - cryptography raises InvalidSignature
        cert.verify_directly_issued_by(group_authority(S2).certificate)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert certificate_key(None) is None and certificate_key(b"not a certificate") is None


# Links ------------------------------------------------------------------------------------


class RecordingLog:
    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.warnings.append((event, fields))

    def refusals(self) -> list[dict[str, Any]]:
        return [f for e, f in self.warnings if e == "peer.connections_refused"]

    async def wait_refused(self, reason: str) -> dict[str, Any]:
        with trio.fail_after(5):
            while True:
                for fields in self.refusals():
                    if fields["reason"] == reason:
                        return fields
                await trio.sleep(0.01)


def transport(ident: Identity, keyring: Keyring | None, log: Any = None) -> WebSocketTransport:
    tls = peer_tls(ident, keyring) if keyring is not None else None
    return WebSocketTransport("127.0.0.1", 0, 1 << 20, handshake_timeout=2.0, log=log, tls=tls)


@asynccontextmanager
async def echo_node(keyring: Keyring | None) -> AsyncIterator[tuple[Identity, str, RecordingLog]]:
    """A node that echoes every frame; yields its identity, address and log."""
    ident, log = Identity.generate(), RecordingLog()
    server = transport(ident, keyring, log)

    async def echo(channel: Channel) -> None:
        channel.authenticated()
        assert server.tls is None or channel.peer_key is not None
        with contextlib.suppress(ChannelClosed):
            while True:
                await channel.send(await channel.receive())

    async with trio.open_nursery() as nursery:
        address: str = await nursery.start(server.serve, echo)
        yield ident, address, log
        nursery.cancel_scope.cancel()


async def test_members_link_over_tls_1_3_and_pin_each_other() -> None:
    async with echo_node(Keyring.of(S1)) as (server, address, _):
        assert address.startswith("wss://")
        client = Identity.generate()
        dialer = transport(client, Keyring.of(S1))
        with trio.fail_after(5):
            async with dialer.open_channel(address, server.node_id) as channel:
                await channel.send(b"ping")
                assert await channel.receive() == b"ping"
                assert channel.peer_key is not None
                assert fingerprint(channel.peer_key) == server.node_id
                assert channel.cipher is not None and channel.cipher.startswith("TLSv1.3 ")


async def test_a_dial_reaching_another_node_is_refused() -> None:
    """The pin: whoever answers must hold the key of the node meant, even a member."""
    async with echo_node(Keyring.of(S1)) as (server, address, _):
        meant = Identity.generate().node_id
        dialer = transport(Identity.generate(), Keyring.of(S1))
        with trio.fail_after(5), pytest.raises(ConnectError) as caught:
            async with dialer.open_channel(address, meant):
                raise AssertionError("linked to the wrong node")
        message = str(caught.value)
        assert f"the key of node {server.node_id}, not node {meant}'s" in message
        assert "man in the middle" in message


async def test_another_groups_node_is_refused_on_both_ends() -> None:
    async with echo_node(Keyring.of(S1)) as (server, address, log):
        dialer = transport(Identity.generate(), Keyring.of(S2))
        with trio.fail_after(5), pytest.raises(ConnectError) as caught:
            async with dialer.open_channel(address, server.node_id):
                raise AssertionError("linked across groups")
        assert "certificate is not from this group's secret" in str(caught.value)
        # The dialer refused the acceptor's certificate first, and told it so (a TLS alert).
        refusal = await log.wait_refused(REFUSED_TLS_FAILED)
        assert "the peer refused this node's certificate" in refusal["error"], refusal


async def test_secure_and_insecure_nodes_refuse_each_other_and_say_why() -> None:
    # An insecure dialer reaching a secure node: answered 426, and both say why.
    async with echo_node(Keyring.of(S1)) as (server, address, log):
        plain = transport(Identity.generate(), None)
        with trio.fail_after(5), pytest.raises(ConnectError) as caught:
            async with plain.open_channel(address, server.node_id):
                raise AssertionError("a plaintext link to a secure node")
        assert "HTTP 426: the peer speaks only TLS" in str(caught.value)
        await log.wait_refused(REFUSED_PLAINTEXT)
    # A secure dialer reaching an insecure node.
    async with echo_node(None) as (server, address, log):
        assert address.startswith("ws://")
        secure = transport(Identity.generate(), Keyring.of(S1))
        with trio.fail_after(5), pytest.raises(ConnectError) as caught:
            async with secure.open_channel(address, server.node_id):
                raise AssertionError("a TLS link to an insecure node")
        assert "TLS handshake" in str(caught.value)
        await log.wait_refused(REFUSED_TLS)


async def test_rotation_steps_keep_old_and_new_nodes_linked() -> None:
    """Each step of a rotation: a node proving with either secret links to one holding
    both; once the old secret is removed, a node holding only it is refused."""
    steps = [
        (Keyring.of(S1, S2), Keyring.of(S1)),  # step 1: new added, not yet first
        (Keyring.of(S2, S1), Keyring.of(S1, S2)),  # step 2: made first, here before there
        (Keyring.of(S2), Keyring.of(S2, S1)),  # step 3: old removed here, not yet there
    ]
    for server_keys, client_keys in steps:
        for a, b in ((server_keys, client_keys), (client_keys, server_keys)):
            async with echo_node(a) as (server, address, _):
                dialer = transport(Identity.generate(), b)
                with trio.fail_after(5):
                    async with dialer.open_channel(address, server.node_id) as channel:
                        await channel.send(b"still linked")
                        assert await channel.receive() == b"still linked"
    async with echo_node(Keyring.of(S2)) as (server, address, _):
        stale = transport(Identity.generate(), Keyring.of(S1))
        with trio.fail_after(5), pytest.raises(ConnectError):
            async with stale.open_channel(address, server.node_id):
                raise AssertionError("the removed secret still links")


async def test_reloaded_contexts_apply_to_new_links_and_spare_open_ones() -> None:
    ident, log = Identity.generate(), RecordingLog()
    server = transport(ident, Keyring.of(S1), log)

    async def echo(channel: Channel) -> None:
        channel.authenticated()
        with contextlib.suppress(ChannelClosed):
            while True:
                await channel.send(await channel.receive())

    async with trio.open_nursery() as nursery:
        address: str = await nursery.start(server.serve, echo)
        old = transport(Identity.generate(), Keyring.of(S1))
        with trio.fail_after(10):
            async with old.open_channel(address, ident.node_id) as open_link:
                server.tls = peer_tls(ident, Keyring.of(S2))  # as SIGHUP does
                await open_link.send(b"before")
                assert await open_link.receive() == b"before"
                with pytest.raises(ConnectError):
                    async with old.open_channel(address, ident.node_id):
                        raise AssertionError("the reloaded node still takes the old secret")
                new = transport(Identity.generate(), Keyring.of(S2))
                async with new.open_channel(address, ident.node_id) as fresh:
                    await fresh.send(b"after")
                    assert await fresh.receive() == b"after"
                await open_link.send(b"still up")
                assert await open_link.receive() == b"still up"
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("mode", "advertise", "says"),
    [
        (
            "secret",
            "ws://192.0.2.1:8701",
            "has a group secret (TLS), so its address starts with wss://",
        ),
        (
            "insecure",
            "wss://192.0.2.1:8701",
            "runs --insecure (plain websockets), so its address starts with ws://",
        ),
    ],
)
def test_the_advertised_scheme_must_match_the_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str, advertise: str, says: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(S1)
    auth = ["--secret-file", str(secret)] if mode == "secret" else ["--insecure"]
    argv = ["--director", "http://127.0.0.1:1", *auth, "--advertise", advertise]
    assert chatd_main(argv) == 2
    assert capsys.readouterr().err == f"chatd: --advertise {advertise}: this node {says}\n"


async def test_a_certificate_the_acceptor_does_not_trust_fails_the_dial_at_once() -> None:
    """TLS 1.3 tells the dialer that the acceptor refused its certificate only after the
    dialer's side of the handshake is done; the dial must still fail at once, saying so."""
    async with echo_node(Keyring.of(S2)) as (server, address, log):
        # Trusts the acceptor's authority, but presents a certificate from S1's.
        dialer = transport(Identity.generate(), Keyring.of(S1, S2))
        start = trio.current_time()
        with trio.fail_after(5), pytest.raises(ConnectError) as caught:
            async with dialer.open_channel(address, server.node_id):
                raise AssertionError("linked with a certificate the acceptor does not trust")
        assert trio.current_time() - start < CONNECT_TIMEOUT / 2
        assert "it may not trust this node's certificate" in str(caught.value), caught.value
        refusal = await log.wait_refused(REFUSED_TLS_FAILED)
        assert "not from this group's secret" in refusal["error"]
