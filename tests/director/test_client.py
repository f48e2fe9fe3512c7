"""DirectorClient against a real director served by hypercorn in-process, and against
things that are not a director."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from chat.auth import Keyring
from chat.wire import CoordinatorRecord, JoinAdvice, NodeRegistration, Unregistration
from chatd.director_client import DirectorClient, DirectorError, load_director_cert
from director.serve import TlsFiles
from tests.director.certs import self_signed
from tests.director.support import open_director

SECRET = b"0123456789abcdef-director-tests"


def node(name: str) -> NodeRegistration:
    return NodeRegistration(node_id=name, address=f"ws://{name}:1", public_address=f"ws://{name}")


def record(name: str, term: int) -> CoordinatorRecord:
    return CoordinatorRecord(
        node_id=name, address=f"ws://{name}:1", public_address=f"ws://{name}", term=term
    )


async def test_round_trip_with_secret() -> None:
    with trio.fail_after(10):
        async with (
            open_director(SECRET) as url,
            DirectorClient(url, Keyring.of(SECRET), 5) as client,
        ):
            assert await client.healthy()
            assert await client.coordinator() is None
            # ws://a has no port: the director dials nothing back, so not reachable.
            start = JoinAdvice("start", term=1, observed_address="127.0.0.1", reachable=False)
            assert await client.register_node(node("a")) == start
            # ... and a, the coordinator named to b, was found dial-out-only: b is told so.
            join = attrs.evolve(
                start,
                action="join",
                coordinator=record("a", 1),
                term=0,
                coordinator_reachable=False,
            )
            assert await client.register_node(node("b")) == join
            assert await client.register_coordinator(record("a", 1)) is None
            assert await client.register_coordinator(record("b", 1)) == record("a", 1)
            assert await client.coordinator() == record("a", 1)
            assert not await client.unregister(Unregistration(node_id="b", term=1))
            assert await client.unregister(Unregistration(node_id="a", term=1))
            assert await client.coordinator() is None


async def test_the_advice_says_whether_the_director_could_dial_the_node_back() -> None:
    (peer_port,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = peer_port.socket.getsockname()[1]
    with trio.fail_after(10):
        async with (
            peer_port,
            open_director(SECRET) as url,
            DirectorClient(url, Keyring.of(SECRET), 5) as client,
        ):
            here = NodeRegistration("a", "wss://0.0.0.0:1", f"wss://127.0.0.1:{port}")
            advice = await client.register_node(here)
            assert (advice.observed_address, advice.reachable) == ("127.0.0.1", True)
            elsewhere = NodeRegistration("b", "wss://0.0.0.0:1", "wss://192.168.1.5:8701")
            advice = await client.register_node(elsewhere)
            assert (advice.observed_address, advice.reachable) == ("127.0.0.1", False)


async def test_missing_or_wrong_secret_is_a_clear_error() -> None:
    with trio.fail_after(10):
        async with open_director(SECRET) as url:
            for secret in (None, b"not the right secret at all"):
                async with DirectorClient(url, Keyring.of(secret) if secret else None, 5) as client:
                    with pytest.raises(DirectorError) as info:
                        await client.register_node(node("a"))
                    message = str(info.value)
                    assert message.startswith(f"director {url} answered POST /register_node")
                    assert "403 forbidden" in message and "X-Chat-Proof" in message
                    assert "\n" not in message


async def test_a_skewed_clock_is_a_clear_error() -> None:
    with trio.fail_after(10):
        async with open_director(SECRET) as url:
            keyring = Keyring.of(SECRET)
            slow = DirectorClient(url, keyring, 5, wall_clock=lambda: time.time() - 120)
            async with slow:
                with pytest.raises(DirectorError) as info:
                    await slow.register_node(node("a"))
            message = str(info.value)
            assert message.startswith(f"director {url} answered POST /register_node with 403")
            assert "timestamp outside the window (clock skew?)" in message
            # Timestamps are whole seconds: 120 s and the fraction dropped.
            assert re.search(r"dated 12[01]s behind the director's clock", message), message
            # Within the window, a clock a little off does not matter.
            async with DirectorClient(url, keyring, 5, wall_clock=lambda: time.time() + 20) as ok:
                assert (await ok.register_node(node("a"))).action == "start"


async def test_https_director_with_a_pinned_certificate(tmp_path: Path) -> None:
    mine, other = self_signed(tmp_path, "director"), self_signed(tmp_path, "other")
    keyring = Keyring.of(SECRET)
    with trio.fail_after(20):
        async with open_director(SECRET, tls=TlsFiles(str(mine.cert), str(mine.key))) as url:
            assert url.startswith("https://127.0.0.1:")
            pin = load_director_cert(str(mine.cert))
            # The certificate names director.test, not 127.0.0.1: the pin alone decides.
            async with DirectorClient(url, keyring, 5, pinned_cert=pin) as client:
                assert await client.healthy()
                assert (await client.register_node(node("a"))).action == "start"
                assert await client.register_coordinator(record("a", 1)) is None
            wrong = load_director_cert(str(other.cert))
            async with DirectorClient(url, keyring, 5, pinned_cert=wrong) as client:
                with pytest.raises(DirectorError) as info:
                    await client.register_node(node("b"))
                assert str(info.value) == (
                    f"director {url}: certificate verify failed: the director's certificate is"
                    " not the pinned one (self-signed certificate)"
                )
            async with DirectorClient(url, keyring, 5) as unpinned:
                with pytest.raises(DirectorError) as info:
                    await unpinned.register_node(node("b"))
                assert str(info.value).startswith(
                    f"director {url}: certificate verify failed: self-signed certificate"
                    " (checked against the system's CAs"
                )
            plain = url.replace("https://", "http://")
            async with DirectorClient(plain, keyring, 5) as client:
                with pytest.raises(DirectorError, match=r"does the director serve https\?"):
                    await client.register_node(node("b"))
            async with DirectorClient(url, None, 5, pinned_cert=pin) as client:
                assert await client.coordinator() == record("a", 1)
        async with open_director(SECRET) as url:
            tls_to_plain = url.replace("http://", "https://")
            async with DirectorClient(tls_to_plain, keyring, 5, pinned_cert=pin) as client:
                with pytest.raises(DirectorError) as info:
                    await client.register_node(node("b"))
                assert str(info.value).startswith(f"director {tls_to_plain}: TLS handshake failed")
                assert str(info.value).endswith("does the director serve https?")


def test_the_pinned_certificate_file_is_checked(tmp_path: Path) -> None:
    one, two = self_signed(tmp_path, "one"), self_signed(tmp_path, "two")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(one.cert.read_bytes() + two.cert.read_bytes())
    cases = {
        tmp_path / "missing.pem": "no such file or directory",
        one.key: "it holds no PEM certificate",
        chain: "it holds 2 certificates; pin the director's own only",
    }
    for path, why in cases.items():
        with pytest.raises(DirectorError) as info:
            load_director_cert(str(path))
        assert str(info.value) == f"cannot use {path} as the director's certificate: {why}"
    pem = load_director_cert(str(one.cert))
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(DirectorError, match="a director certificate is pinned, but the director"):
        DirectorClient("http://127.0.0.1:8700", None, 5, pinned_cert=pem)


async def test_nothing_listening_is_unreachable() -> None:
    with trio.fail_after(10):
        # Bound but not listening: connecting is refused, and no one else can take the port.
        with socket.socket() as placeholder:
            placeholder.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{placeholder.getsockname()[1]}"
            async with DirectorClient(url, None, 5) as client:
                with pytest.raises(DirectorError) as info:
                    await client.register_node(node("a"))
                assert str(info.value) == f"director {url} unreachable: connection refused"
                assert not await client.healthy()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://127.0.0.1:8700", "scheme must be http or https"),
        ("127.0.0.1:8700", "scheme must be http or https"),
        ("http://", "no host"),
        ("http://127.0.0.1:99999", "invalid director URL"),
        ("http://127.0.0.1:8700/?x=1", "no query"),
    ],
)
def test_bad_urls_are_refused_up_front(url: str, why: str) -> None:
    # Synchronous (no I/O at all), hence no deadline.
    with pytest.raises(DirectorError, match="invalid director URL") as info:
        DirectorClient(url, None, 5)
    assert why in str(info.value)


async def test_wrong_path_prefix_is_a_clear_error() -> None:
    with trio.fail_after(10):
        async with open_director() as url, DirectorClient(url + "/chat", None, 5) as client:
            with pytest.raises(DirectorError, match="404 not found: no such endpoint"):
                await client.register_node(node("a"))


Handler = Callable[[Any, Any, Any], Awaitable[None]]


@asynccontextmanager
async def open_server(app: Handler) -> AsyncIterator[str]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=stop.wait, mode="asgi")
        )
        try:
            yield binds[0]
        finally:
            stop.set()


async def html_page(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan support")  # hypercorn carries on without it
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"<html>hello</html>"})


async def test_not_a_director_is_a_clear_error() -> None:
    with trio.fail_after(10):
        async with open_server(html_page) as url, DirectorClient(url, None, 5) as client:
            with pytest.raises(DirectorError, match="not valid JSON") as info:
                await client.register_node(node("a"))
            assert str(info.value).startswith(f"director {url} answered POST /register_node")
            assert not await client.healthy()


async def test_silent_server_times_out() -> None:
    async def never_answer(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                partial(trio.serve_tcp, never_answer, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            async with DirectorClient(f"http://127.0.0.1:{port}", None, 0.2) as client:
                with pytest.raises(DirectorError, match=r"timed out after 0\.2s"):
                    await client.register_node(node("a"))
            nursery.cancel_scope.cancel()
