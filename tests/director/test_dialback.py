"""The director's dial-back: what it dials, what it finds, and what it never dials.

Over real sockets on 127.0.0.1 where a real answer exists (a listener, a closed port);
a connect that never answers and a full set of dial-backs use an injected connect under
trio's virtual clock, so no test waits out a real timeout.
"""

from __future__ import annotations

import socket

import orjson
import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from director.app import DirectorApp
from director.dialback import DialBack, same_host
from director.registry import Registry
from tests.director.asgi import call


async def listener() -> tuple[trio.SocketListener, int]:
    (opened,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    return opened, opened.socket.getsockname()[1]


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Recorder:
    """A connect that records what it was asked to dial, then does ``then``."""

    def __init__(self, then: str = "succeed") -> None:
        self.dialed: list[tuple[str, int]] = []
        self.then = then
        self.release = trio.Event()

    async def __call__(self, address: str, port: int) -> None:
        self.dialed.append((address, port))
        if self.then == "hang":
            await trio.sleep_forever()
        if self.then == "wait":
            await self.release.wait()


async def test_a_listening_node_is_reachable_and_sees_a_connection_closed_before_a_byte() -> None:
    opened, port = await listener()
    with trio.fail_after(5):
        async with opened:
            verdict = await DialBack().check(f"wss://127.0.0.1:{port}", "127.0.0.1")
            assert (verdict.result, verdict.reachable) == ("reachable", True)
            stream = await opened.accept()
            assert await stream.receive_some(10) == b""  # nothing sent: a silent probe
            await stream.aclose()


async def test_a_closed_port_is_refused_with_the_reason() -> None:
    with trio.fail_after(5):
        verdict = await DialBack().check(f"ws://127.0.0.1:{closed_port()}", "127.0.0.1")
    assert (verdict.result, verdict.reachable) == ("refused", False)
    assert verdict.reason == "connection refused"


async def test_no_answer_times_out(autojump_clock: trio.testing.MockClock) -> None:
    connect = Recorder(then="hang")
    verdict = await DialBack(timeout=1.0, connect=connect).check("wss://10.9.8.7:8701", "10.9.8.7")
    assert connect.dialed == [("10.9.8.7", 8701)]
    assert (verdict.result, verdict.reachable) == ("timed-out", False)
    assert verdict.reason == "dialing 10.9.8.7 took over 1 s"


@pytest.mark.parametrize(
    ("advertised", "observed"),
    [
        # At home: a LAN address, the request from the router's public one.
        ("wss://192.168.1.5:8701", "203.0.113.7"),
        # The director's own loopback, or another host, named by someone else.
        ("wss://127.0.0.1:22", "203.0.113.7"),
        ("wss://198.51.100.1:8701", "203.0.113.7"),
        # A name that resolves to loopback, from elsewhere.
        ("wss://localhost:8701", "203.0.113.7"),
        # Not a peer address at all.
        ("http://203.0.113.7:80", "203.0.113.7"),
        ("wss://203.0.113.7", "203.0.113.7"),
        ("wss://[::1:8701", "::1"),
        ("", ""),
    ],
)
async def test_only_the_address_the_registration_came_from_is_ever_dialed(
    advertised: str, observed: str
) -> None:
    connect = Recorder()
    with trio.fail_after(5):
        verdict = await DialBack(connect=connect).check(advertised, observed)
    assert connect.dialed == []
    assert (verdict.result, verdict.reachable) == ("not-dialed", False)
    assert verdict.reason


@pytest.mark.parametrize(
    ("advertised", "observed", "dialed"),
    [
        ("wss://127.0.0.1:8701", "127.0.0.1", ("127.0.0.1", 8701)),
        ("wss://127.0.0.1:8701", "::ffff:127.0.0.1", ("127.0.0.1", 8701)),  # a dual-stack bind
        ("wss://localhost:8701", "127.0.0.1", ("127.0.0.1", 8701)),  # resolved, then matched
        ("ws://[::1]:8701", "::1", ("::1", 8701)),
    ],
)
async def test_the_advertised_address_is_dialed_when_it_is_where_the_node_is(
    advertised: str, observed: str, dialed: tuple[str, int]
) -> None:
    connect = Recorder()
    with trio.fail_after(5):
        verdict = await DialBack(connect=connect).check(advertised, observed)
    assert connect.dialed == [dialed]
    assert verdict.reachable


def test_same_host_compares_addresses_not_strings() -> None:
    assert same_host("::ffff:10.0.0.1", "10.0.0.1")
    assert same_host("::1", "0:0:0:0:0:0:0:1")
    assert not same_host("10.0.0.1", "10.0.0.2")
    assert not same_host("localhost", "127.0.0.1")


async def test_dial_backs_are_bounded_and_the_rest_are_busy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    connect = Recorder(then="wait")
    dial_back = DialBack(timeout=1.0, concurrency=2, connect=connect)
    verdicts = []

    async def check(port: int) -> None:
        verdicts.append(await dial_back.check(f"wss://10.0.0.1:{port}", "10.0.0.1"))

    async with trio.open_nursery() as nursery:
        for port in (1, 2, 3):
            nursery.start_soon(check, port)
        await trio.sleep(0.5)
        assert len(connect.dialed) == 2  # the third waits for a slot
        connect.release.set()
    assert len(connect.dialed) == 3  # a slot freed within the timeout
    assert all(v.reachable for v in verdicts)

    connect = Recorder(then="hang")
    dial_back = DialBack(timeout=1.0, concurrency=1, connect=connect)
    verdicts.clear()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(check, 1)
        nursery.start_soon(check, 2)
    assert sorted(v.result for v in verdicts) == ["busy", "timed-out"]
    assert len(connect.dialed) == 1


# Through the app: the answer to /register_node, and the log -------------------------------


def registration(public_address: str) -> bytes:
    return orjson.dumps(
        {"node-id": "n1", "address": "wss://0.0.0.0:8701", "public-address": public_address}
    )


async def register(app: DirectorApp, body: bytes, client: str, *, ask: bool = True) -> object:
    headers = [("content-type", "application/json")]
    if ask:
        headers.append(("x-chat-dial-back", "1"))
    reply = await call(app, "POST", "/register_node", body, headers, client=client)
    assert reply.status == 200
    return reply.json()


async def test_the_director_answers_what_it_saw_and_found_and_logs_it() -> None:
    opened, port = await listener()
    with trio.fail_after(5):
        async with opened:
            app = DirectorApp(Registry(), None)
            with capture_logs() as logs:
                answer = await register(app, registration(f"wss://127.0.0.1:{port}"), "127.0.0.1")
            assert answer == {
                "action": "start",
                "coordinator": None,
                "term": 1,
                "observed-address": "127.0.0.1",
                "reachable": True,
                "coordinator-reachable": True,
            }
            (line,) = [e for e in logs if e["event"] == "director.dialback"]
            assert line["node-id"] == "n1"
            assert (line["result"], line["reachable"], line["observed"]) == (
                "reachable",
                True,
                "127.0.0.1",
            )
            assert line["log_level"] == "info"


async def test_a_node_behind_nat_is_told_it_is_not_reachable_and_is_not_dialed() -> None:
    connect = Recorder()
    app = DirectorApp(Registry(), None, dial_back=DialBack(connect=connect))
    with trio.fail_after(5), capture_logs() as logs:
        answer = await register(app, registration("wss://192.168.1.5:8701"), "203.0.113.7")
    assert connect.dialed == []
    assert isinstance(answer, dict)
    assert (answer["observed-address"], answer["reachable"]) == ("203.0.113.7", False)
    (line,) = [e for e in logs if e["event"] == "director.dialback"]
    assert line["result"] == "not-dialed"
    assert "203.0.113.7" in line["reason"] and "192.168.1.5" in line["reason"]


async def test_a_node_that_does_not_ask_gets_the_answer_it_always_got() -> None:
    # A chatd that predates the fields refuses unknown ones: no dial-back, no new fields.
    connect = Recorder()
    app = DirectorApp(Registry(), None, dial_back=DialBack(connect=connect))
    with trio.fail_after(5), capture_logs() as logs:
        answer = await register(app, registration("wss://127.0.0.1:8701"), "127.0.0.1", ask=False)
    assert answer == {"action": "start", "coordinator": None, "term": 1}
    assert connect.dialed == []
    assert not [e for e in logs if e["event"] == "director.dialback"]


async def test_a_newcomer_is_told_when_the_coordinator_is_dial_out_only() -> None:
    # home registered from behind its NAT (not dialed: not reachable), then coordinates.
    app = DirectorApp(Registry(), None, dial_back=DialBack(connect=Recorder()))
    home = orjson.dumps(
        {
            "node-id": "home",
            "address": "wss://0.0.0.0:8701",
            "public-address": "wss://192.168.1.5:8701",
        }
    )
    with trio.fail_after(5):
        first = await register(app, home, "203.0.113.7")
        assert isinstance(first, dict) and first["action"] == "start"
        assert first["coordinator-reachable"] is True  # nobody is named
        record = {
            "node-id": "home",
            "address": "wss://0.0.0.0:8701",
            "public-address": "wss://192.168.1.5:8701",
            "term": 1,
        }
        headers = [("content-type", "application/json")]
        body = orjson.dumps(record)
        reply = await call(
            app, "POST", "/register_coordinator", body, headers, client="203.0.113.7"
        )
        assert reply.status == 200
        newcomer = await register(app, registration("wss://198.51.100.9:8701"), "198.51.100.9")
        assert isinstance(newcomer, dict)
        assert newcomer["action"] == "join" and newcomer["coordinator"]["node-id"] == "home"
        assert newcomer["coordinator-reachable"] is False
        # Found reachable at its next registration, it is no longer named as dial-out-only.
        app._note_reachability("home", True)
        again = await register(app, registration("wss://198.51.100.9:8701"), "198.51.100.9")
        assert isinstance(again, dict) and again["coordinator-reachable"] is True
