"""One IRC session in-process, against a fake node, under a virtual clock: registration
and its deadline, the password, CAP, pings, a client that does not read, the channel."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import structlog
import trio
import trio.testing

from chat.wire import Message
from chat_testing import fuzz
from chatd.core.node import NodeError
from chatd.core.presence import Presence
from chatd.irc.parse import IrcMessage, parse_line
from chatd.irc.session import Limits, Session
from chatd.log_limit import LogLimiter

ME = "a" * 32
BOB = "b" * 32
PASSWORD = "s3cret-password"
LIMITS = Limits(
    registration_timeout=5, ping_interval=10, ping_timeout=5, write_timeout=3, queue_lines=8
)


class FakeNode:
    node_id = ME

    def __init__(self) -> None:
        self.names = {ME: "alice", BOB: "bob"}
        self.messages: list[Message] = []
        self.refuse: NodeError | None = None
        self.renamed: list[str] = []
        self._subscribers: dict[trio.MemorySendChannel[Any], Callable[[], None]] = {}

    def members(self) -> list[tuple[str, str]]:
        return list(self.names.items())

    def history(self) -> list[Message]:
        return list(self.messages)

    def message(self, node_id: str, text: str) -> Message:
        number = len(self.messages) + 1
        return Message(
            id=f"m{number}",
            node_id=node_id,
            name=self.names.get(node_id, "gone"),
            timestamp=f"2026-12-01T10:00:{number:02d}.000Z",
            message=text,
            vector_clock={node_id: number},
            public_key="k",
            signature="s",
        )

    def deliver(self, message: Message) -> None:
        self.messages.append(message)
        self.publish(message)

    def publish(self, event: Any) -> None:
        for channel, on_drop in list(self._subscribers.items()):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                del self._subscribers[channel]
                channel.close()
                on_drop()
            except trio.BrokenResourceError:
                del self._subscribers[channel]

    def leave(self) -> None:
        """As the runtime does when the node leaves: every subscription ends."""
        for channel in self._subscribers:
            channel.close()
        self._subscribers.clear()

    def send(self, text: str) -> Message:
        if self.refuse is not None:
            raise self.refuse
        message = self.message(ME, text)
        self.deliver(message)
        return message

    def rename(self, name: str) -> str:
        self.renamed.append(name)
        self.names[ME] = name
        return name

    def subscribe(self, on_drop: Callable[[], None]) -> trio.MemoryReceiveChannel[Any]:
        send, receive = trio.open_memory_channel[Any](16)
        self._subscribers[send] = on_drop
        return receive


class Client:
    """Raw lines over an in-memory stream: what an IRC client would send and see."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, *lines: str) -> None:
        await self.stream.send_all(b"".join(line.encode() + b"\r\n" for line in lines))

    async def line(self) -> IrcMessage | None:
        """The next line, None at the end of the stream."""
        while b"\r\n" not in self.buffer:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return None
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\r\n", 1)
        return parse_line(raw)

    async def until(self, command: str) -> list[IrcMessage]:
        """Every line up to and including the first ``command``."""
        seen: list[IrcMessage] = []
        while True:
            message = await self.line()
            assert message is not None, f"closed before {command}; saw {seen}"
            seen.append(message)
            if message.command == command:
                return seen

    async def closed(self) -> list[IrcMessage]:
        seen: list[IrcMessage] = []
        while (message := await self.line()) is not None:
            seen.append(message)
        return seen

    async def register(self, password: str = PASSWORD) -> list[IrcMessage]:
        await self.send(f"PASS {password}", "NICK alice", "USER u 0 * :Real")
        return await self.until("376")


class Ended(list[str]):
    """Why the session ended (once it has), and an event set then."""

    def __init__(self) -> None:
        super().__init__()
        self.done = trio.Event()


@asynccontextmanager
async def session(
    node: FakeNode, pair: Callable[[], tuple[Any, Any]] = trio.testing.memory_stream_pair
) -> AsyncIterator[tuple[Client, Ended]]:
    client_end, server_end = pair()
    reasons = Ended()
    log = structlog.get_logger()

    async def serve() -> None:
        s = Session(node, server_end, PASSWORD, LIMITS, log, LogLimiter(log))
        reasons.append(await s.run())
        reasons.done.set()
        await server_end.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        yield Client(client_end), reasons
        nursery.cancel_scope.cancel()


async def test_registration_welcomes_with_the_node_s_nick(autojump_clock: Any) -> None:
    async with session(FakeNode()) as (client, _):
        lines = await client.register()
        welcome = lines[0]
        assert (welcome.command, welcome.params[0]) == ("001", "alice")
        isupport = next(m for m in lines if m.command == "005")
        assert {"CHANTYPES=#", "CASEMAPPING=ascii", "NETWORK=chat"} <= set(isupport.params)


async def test_cap_negotiation_holds_registration_until_cap_end(autojump_clock: Any) -> None:
    async with session(FakeNode()) as (client, _):
        await client.send("CAP LS 302", f"PASS {PASSWORD}", "NICK x", "USER u 0 * :R")
        (ls,) = await client.until("CAP")
        assert ls.params[1] == "LS" and "server-time" in ls.params[2].split()
        await client.send("CAP REQ :server-time bogus")
        (nak,) = await client.until("CAP")
        assert nak.params[1:] == ("NAK", "server-time bogus")
        await client.send("CAP REQ :server-time")
        (ack,) = await client.until("CAP")
        assert ack.params[1:] == ("ACK", "server-time")
        await client.send("CAP END")
        assert (await client.line()).command == "001"  # type: ignore[union-attr]


@pytest.mark.parametrize("password", [None, "wrong-password"])
async def test_a_wrong_or_missing_password_is_refused_and_closed(
    autojump_clock: Any, password: str | None
) -> None:
    async with session(FakeNode()) as (client, reasons):
        if password is not None:
            await client.send(f"PASS {password}")
        await client.send("NICK x", "USER u 0 * :R", "JOIN #chat")
        lines = await client.closed()
        assert [m.command for m in lines] == ["464", "ERROR"]
        assert reasons and "password" in reasons[0]


async def test_commands_before_registration_are_refused(autojump_clock: Any) -> None:
    async with session(FakeNode()) as (client, _):
        await client.send("JOIN #chat")
        (refused,) = await client.until("451")
        assert refused.params[0] == "*"


async def test_registration_has_a_deadline(autojump_clock: Any) -> None:
    async with session(FakeNode()) as (client, reasons):
        await client.send("NICK x")
        lines = await client.closed()
        assert lines[-1].command == "ERROR"
        assert reasons == ["registration timed out"]
        assert trio.current_time() >= LIMITS.registration_timeout


async def test_an_idle_client_is_pinged_and_dropped_if_it_does_not_answer(
    autojump_clock: Any,
) -> None:
    async with session(FakeNode()) as (client, reasons):
        await client.register()
        (ping,) = await client.until("PING")
        await client.send(f"PONG :{ping.params[0]}")
        await client.until("PING")  # answered once: pinged again after the next silence
        lines = await client.closed()
        assert lines[-1].command == "ERROR"
        assert reasons[0].startswith("ping timeout")


async def test_a_client_that_stops_reading_is_cut_off_and_the_node_goes_on(
    autojump_clock: Any,
) -> None:
    node = FakeNode()
    async with session(node, trio.testing.lockstep_stream_pair) as (client, reasons):
        await client.register()
        await client.send("JOIN #chat")
        await client.until("366")
        # The client reads nothing more: the node's deliveries must never block.
        for i in range(100):
            node.deliver(node.message(BOB, f"message {i}"))
            await trio.sleep(0.1)
        with trio.fail_after(LIMITS.write_timeout * 2):
            await reasons.done.wait()
        assert reasons[0].startswith("too slow")


async def test_join_replays_history_with_server_time_then_forwards(autojump_clock: Any) -> None:
    node = FakeNode()
    node.deliver(node.message(BOB, "earlier"))
    node.deliver(node.message(ME, "/me waved"))
    async with session(node) as (client, _):
        await client.send("CAP LS", "CAP REQ server-time", "CAP END")
        await client.register()
        await client.send("JOIN #chat")
        lines = await client.until("366")
        assert lines[0].command == "JOIN" and lines[0].source == f"alice!{ME[:12]}@chat"
        names = next(m for m in lines if m.command == "353")
        assert names.params[-1].split() == ["alice", "bob"]
        first, second = await client.line(), await client.line()
        assert first is not None and second is not None
        assert (first.source, first.params, first.tags) == (
            f"bob!{BOB[:12]}@chat",
            ("#chat", "earlier"),
            (("time", "2026-12-01T10:00:01.000Z"),),
        )
        assert second.source and second.source.startswith("alice!")
        assert second.params[1] == "\x01ACTION waved\x01"
        node.deliver(node.message(BOB, "later"))
        live = await client.line()
        assert live is not None and live.params == ("#chat", "later")


async def test_privmsg_sends_and_is_not_echoed_without_echo_message(autojump_clock: Any) -> None:
    node = FakeNode()
    async with session(node) as (client, _):
        await client.register()
        await client.send("PRIVMSG #chat :too early", "JOIN #chat")
        (refused,) = await client.until("404")
        await client.until("366")
        await client.send("PRIVMSG #chat :hello", "PRIVMSG #chat :\x01ACTION waves\x01", "PING 1")
        assert [m.command for m in await client.until("PONG")] == ["PONG"]  # no echo
        node.send("from chatctl")  # this node's user, elsewhere: shown as the client's own
        node.refuse = NodeError("rate-limited", "over the flood limit")
        await client.send("PRIVMSG #chat :one too many", "PRIVMSG bob :psst", "PING end")
        lines = await client.until("PONG")
        assert [m.message for m in node.messages] == ["hello", "/me waves", "from chatctl"]
        shown = [(m.command, m.params[-1]) for m in lines]
        assert shown == [
            ("PRIVMSG", "from chatctl"),
            ("404", "Not sent: over the flood limit"),
            ("404", "Private messages are not supported: talk in #chat"),
            ("PONG", "end"),
        ]
        assert "too early" not in [m.message for m in node.messages]
        assert refused.params[1] == "#chat"


async def test_membership_changes_become_quit_nick_and_join(autojump_clock: Any) -> None:
    node = FakeNode()
    async with session(node) as (client, _):
        await client.register()
        await client.send("JOIN #chat")
        await client.until("366")
        carol = "c" * 32
        node.names[carol] = "bob"  # a second "bob": both get a node-id suffix
        node.publish(Presence("joined", carol, "bob"))
        nick = await client.line()
        join = await client.line()
        assert nick is not None and join is not None
        assert (nick.source, nick.command, nick.params) == (
            f"bob!{BOB[:12]}@chat",
            "NICK",
            ("bob|bbbb",),
        )
        assert (join.source, join.command) == (f"bob|cccc!{carol[:12]}@chat", "JOIN")
        del node.names[BOB]
        node.publish(Presence("timed-out", BOB, "bob"))
        quit_, back = await client.line(), await client.line()
        assert quit_ is not None and (quit_.command, quit_.params) == ("QUIT", ("timed out",))
        assert back is not None and (back.command, back.params) == ("NICK", ("bob",))


async def test_nick_renames_the_node(autojump_clock: Any) -> None:
    node = FakeNode()
    async with session(node) as (client, _):
        await client.register()
        await client.send("NICK 9bad", "NICK alicia")
        (bad,) = await client.until("432")
        assert bad.params[1] == "9bad"
        (renamed,) = await client.until("NICK")
        assert renamed.source == f"alice!{ME[:12]}@chat" and renamed.params == ("alicia",)
        assert node.renamed == ["alicia"]


async def test_garbage_is_answered_and_the_session_goes_on(autojump_clock: Any) -> None:
    async with session(FakeNode()) as (client, _):
        await client.register()
        await client.stream.send_all(b"\xff\xfe\r\nFOO bar\r\n" + b"x" * 600 + b"\r\nPING ok\r\n")
        lines = await client.until("PONG")
        assert [m.command for m in lines] == ["400", "421", "417", "PONG"]


async def test_the_node_leaving_ends_the_session_with_a_reason(autojump_clock: Any) -> None:
    node = FakeNode()
    async with session(node) as (client, reasons):
        await client.register()
        await client.send("PING sync")
        await client.until("PONG")
        node.leave()
        lines = await client.closed()
        assert [(m.command, m.params) for m in lines] == [
            ("ERROR", ("Closing link: the node left the discussion",))
        ]
        assert reasons == ["the node left the discussion"]


HOSTILE = [
    "NICK ::x",
    "NICK :a b",
    "JOIN ,#chat,,#other",
    "JOIN :#a b",
    "PRIVMSG ,:x :hi",
    "PRIVMSG :#chat",
    "CAP :a b",
    "CAP REQ",
    "WHO :a b",
    "WHOIS :",
    "WHOIS",
    "MODE :x y",
    "MODE",
    "PART :a b",
    "PART ,",
    "TOPIC :",
    "NAMES :a b",
    "ISON",
    "USERHOST :x y",
    "PASS",
    "USER",
    "NOTICE",
]


async def test_hostile_and_fuzzed_lines_are_answered_and_the_session_goes_on(
    autojump_clock: Any,
) -> None:
    rng = random.Random(11)
    fuzzed = [fuzz.irc_line_input(rng) for _ in range(400)]
    lines = [line.encode() for line in HOSTILE] + [
        raw for raw in fuzzed if not raw.upper().lstrip().startswith((b"QUIT", b"@"))
    ]
    async with session(FakeNode()) as (client, reasons):
        await client.register()
        await client.send("JOIN #chat")
        for raw in lines:
            await client.stream.send_all(raw.replace(b"\r", b"") + b"\r\n")
        await client.send("PING still-alive")
        while (pong := (await client.until("PONG"))[-1]).params[-1] != "still-alive":
            assert pong.command == "PONG"  # one of the fuzzed PINGs
        assert not reasons  # still running


async def test_history_of_a_member_who_left_uses_its_name_told_apart(autojump_clock: Any) -> None:
    node = FakeNode()
    node.names["d" * 32] = "bob"  # a second bob, who then leaves
    node.deliver(node.message("d" * 32, "from the other bob"))
    del node.names["d" * 32]
    async with session(node) as (client, _):
        await client.register()
        await client.send("JOIN #chat")
        await client.until("366")
        replayed = await client.line()
        assert replayed is not None and replayed.params == ("#chat", "from the other bob")
        assert replayed.source == f"bob|dddd!{'d' * 12}@chat"  # not the bob who is here


async def test_members_already_there_when_the_node_joined_are_shown(autojump_clock: Any) -> None:
    node = FakeNode()
    del node.names[BOB]  # the node is not in a discussion yet
    async with session(node) as (client, _):
        await client.register()
        await client.send("JOIN #chat")
        names = [m for m in await client.until("366") if m.command == "353"]
        assert names[0].params[-1] == "alice"
        node.names[BOB] = "bob"  # joined a discussion: its baseline brings no events
        join = await client.line()
        assert join is not None and (join.source, join.command) == (f"bob!{BOB[:12]}@chat", "JOIN")
