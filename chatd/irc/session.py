"""One IRC client connection: registration, reading, writing, keeping it alive.

A session runs three tasks: the reader (registration, then commands, ``commands.py``),
the writer (a bounded queue of lines to the socket), and, once registered, the forwarder
(the node's deliveries, turned into lines). Nothing a client does stops the node or other
clients: registration has a deadline, a started line must end in time, an idle client
is pinged and dropped if it does not answer, and a client that does not read is cut off
(the writer's deadline, or the node's per-subscriber queue overflowing).
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Awaitable, Callable

import trio
from attrs import frozen

from chat.log import Logger, WarningLog
from chat.wire import DecodeError, Message
from chatd.core.presence import Presence
from chatd.irc import numerics as n
from chatd.irc.commands import Closed, Commands
from chatd.irc.nicks import NICKLEN, fold, is_valid_nick
from chatd.irc.node import GatewayNode, nicks_of
from chatd.irc.numerics import NETWORK, SERVER
from chatd.irc.parse import (
    MAX_READ_BYTES,
    IrcMessage,
    IrcParseError,
    format_message,
    parse_line,
)
from chatd.irc.relay import Relay
from chatd.lines import LineReader, LineTimeout

# How long a leaving node gives a client to take its last line (ERROR).
GOODBYE_LINGER = 1.0
# With nothing delivered for this long, the client's view of the members is checked.
RESYNC_INTERVAL = 2.0


@frozen
class Limits:
    """A session's bounds (README: IRC gateway)."""

    registration_timeout: float = 30.0
    ping_interval: float = 60.0  # of silence from the client, then PING
    ping_timeout: float = 60.0  # for any line after that PING
    line_timeout: float = 10.0  # for the rest of a started line
    write_timeout: float = 30.0  # for the socket to take queued lines
    queue_lines: int = 1024  # lines queued for the writer
    # A wrong password is answered after this long: with clients_max connections at most,
    # guessing a password from a file (8 characters at least) is a few tries a second.
    refusal_delay: float = 1.0


class Session:
    def __init__(
        self,
        node: GatewayNode,
        stream: trio.abc.Stream,
        password: str,
        limits: Limits,
        log: Logger,
        limited: WarningLog,
        version: str = "",
        remote: str = "",
    ) -> None:
        self.node = node
        self.stream = stream
        self.password = password
        self.limits = limits
        self.log = log
        self.limited = limited  # warnings about clients, rate-limited (control.LogLimiter)
        self.version = version
        self.remote = remote
        self.nick = "*"  # what the client has been told its nick is
        self.caps: set[str] = set()
        self.registered = False
        self.joined = False
        self.known: dict[str, str] = {}  # node-id -> nick, as told to the client (joined)
        self.shown: set[str] = set()  # ids replayed at JOIN: not forwarded again
        self.sent: set[str] = set()  # ids this client sent: echoed only with echo-message
        self._pass: str | None = None
        self._nick: str | None = None
        self._user = False
        self._cap_pending = False  # CAP LS/REQ before registration holds it until CAP END
        self._out, self._queue = trio.open_memory_channel[bytes](limits.queue_lines)
        self.burst = trio.Lock()  # a JOIN's lines are not interleaved with deliveries
        self._writing = trio.Lock()  # one send_all on the stream at a time
        self._cut: trio.CancelScope | None = None  # the whole session's
        self._forward_scope: trio.CancelScope | None = None
        self.reason = "closed"
        self.commands = Commands(self)
        self.relay = Relay(self)

    # Lifecycle ----------------------------------------------------------------------------

    async def run(self) -> str:
        """Serve the client until it quits, fails or is cut off; why it ended."""
        async with trio.open_nursery() as nursery:
            self._cut = nursery.cancel_scope
            nursery.start_soon(self._write)
            try:
                self.reason = await self._converse(nursery)
            except Closed as exc:
                self.reason = str(exc)
                with trio.move_on_after(self.limits.write_timeout):
                    await self.put(format_message(IrcMessage("ERROR", (f"Closing link: {exc}",))))
            finally:
                self._out.close()  # the writer sends what is queued, then ends
                nursery.cancel_scope.deadline = trio.current_time() + self.limits.write_timeout
                if self._forward_scope is not None:
                    self._forward_scope.cancel()
        return self.reason

    def cut_off(self, reason: str) -> None:
        self.reason = reason
        if self._cut is not None:
            self._cut.cancel()

    async def _converse(self, nursery: trio.Nursery) -> str:
        reader = LineReader(self.stream, MAX_READ_BYTES, self.limits.line_timeout)
        deadline = trio.current_time() + self.limits.registration_timeout
        pinged = False
        while True:
            if self.registered and not pinged:
                deadline = trio.current_time() + self.limits.ping_interval
            with trio.move_on_at(deadline) as waited:
                try:
                    line = await reader.next_line()
                except DecodeError:
                    await self.numeric(n.ERR_INPUTTOOLONG, "Input line was too long")
                    raise Closed("line too long") from None
                except LineTimeout:
                    raise Closed("line not finished in time") from None
            if waited.cancelled_caught:
                if not self.registered:
                    raise Closed("registration timed out")
                if pinged:
                    raise Closed(f"ping timeout: {self.limits.ping_timeout:g} s")
                await self.put(format_message(IrcMessage("PING", (SERVER,))))
                pinged = True
                deadline = trio.current_time() + self.limits.ping_timeout
                continue
            if line is None:
                return "the client closed the connection"
            pinged = False
            was_registered = self.registered
            await self._handle(line)
            if self.registered and not was_registered:
                self._start_forwarding(nursery)

    def _start_forwarding(self, nursery: trio.Nursery) -> None:
        self._forward_scope = trio.CancelScope()
        live = self.node.subscribe(
            on_drop=lambda: self.cut_off("too slow: the client does not read")
        )
        nursery.start_soon(self._forward, live, self._forward_scope)

    async def _forward(
        self, live: trio.MemoryReceiveChannel[Message | Presence], scope: trio.CancelScope
    ) -> None:
        with scope, live:
            while True:
                with trio.move_on_after(RESYNC_INTERVAL) as idle:
                    try:
                        event = await live.receive()
                    except trio.EndOfChannel:
                        break
                async with self.burst:
                    if idle.cancelled_caught:
                        # No event says who was already there when this node joined a
                        # discussion (the first membership is the baseline): catch up.
                        await self.relay.sync_members()
                    else:
                        await self.relay.deliver(event)
            if self._cut is not None and self._cut.cancel_called:
                return  # cut off (too slow): the node closed the stream for that
            # The node closed the stream: it is leaving, and stops right after. Say so at
            # once, shielded for a moment (as control's TailEnd), between the writer's writes.
            self.reason = "the node left the discussion"
            line = format_message(IrcMessage("ERROR", (f"Closing link: {self.reason}",)))
            with trio.CancelScope(shield=True), trio.move_on_after(GOODBYE_LINGER):
                async with self._writing:
                    await self.stream.send_all(line)
            self.cut_off(self.reason)

    async def _write(self) -> None:
        """Send queued lines, several per write; cut the session off if the socket does
        not take them within write_timeout."""
        try:
            await self._send_queued()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.cut_off("the connection broke")
            return
        if self._cut is not None:
            self._cut.cancel()  # everything queued is sent, the queue closed: the end

    async def _send_queued(self) -> None:
        async for data in self._queue:
            batch = [data]
            size = len(data)
            while size < 65536:
                try:
                    batch.append(self._queue.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                size += len(batch[-1])
            with trio.move_on_after(self.limits.write_timeout) as scope:
                async with self._writing:
                    await self.stream.send_all(b"".join(batch))
            if scope.cancelled_caught:
                self.cut_off("too slow: the client does not read")
                return

    # Output -------------------------------------------------------------------------------

    async def put(self, line: bytes) -> None:
        with contextlib.suppress(trio.ClosedResourceError):  # closing: nothing more goes out
            await self._out.send(line)

    async def put_all(self, lines: list[bytes]) -> None:
        for line in lines:
            await self.put(line)

    async def numeric(self, code: str, *params: str) -> None:
        """A numeric reply; middle parameters may echo what the client sent (a channel, a
        nick), so one that cannot be written as a middle parameter is shown as ``*``."""
        *middle, last = (self.nick, *params)
        shown = tuple(p if _writable(p) else "*" for p in middle)
        await self.put(format_message(IrcMessage(code, (*shown, last), SERVER)))

    async def need(self, message: IrcMessage, count: int) -> bool:
        """Whether ``message`` has its first ``count`` parameters, non-empty; if not, the
        client is told (ERR_NEEDMOREPARAMS)."""
        if len(message.params) >= count and all(message.params[:count]):
            return True
        await self.numeric(n.ERR_NEEDMOREPARAMS, message.command, "Not enough parameters")
        return False

    async def notice(self, text: str) -> None:
        await self.put(format_message(IrcMessage("NOTICE", (self.nick, text), SERVER)))

    def mask(self, node_id: str, nick: str) -> str:
        return f"{nick}!{node_id[:12]}@{NETWORK}"

    @property
    def own_mask(self) -> str:
        return self.mask(self.node.node_id, self.nick)

    # Input --------------------------------------------------------------------------------

    async def _handle(self, raw: bytes) -> None:
        try:
            message = parse_line(raw)
        except IrcParseError as exc:
            self.limited.warning("irc.bad_line", reason=str(exc))
            if exc.too_long:
                await self.numeric(n.ERR_INPUTTOOLONG, "Input line was too long")
            else:
                await self.numeric(n.ERR_UNKNOWNERROR, "*", f"Malformed line: {exc}")
            return
        if message is None:
            return
        if self.registered:
            await self.commands.handle(message)
            return
        handler: Callable[[IrcMessage], Awaitable[None]] | None = {
            "CAP": self.commands.cap,
            "PASS": self._on_pass,
            "NICK": self._on_nick,
            "USER": self._on_user,
            "PING": self.commands.ping,
            "PONG": self.commands.pong,
            "QUIT": self.commands.quit,
        }.get(message.command)
        if handler is None:
            await self.numeric(n.ERR_NOTREGISTERED, "You have not registered")
            return
        await handler(message)
        await self._maybe_register()

    async def _on_pass(self, message: IrcMessage) -> None:
        if not message.params:
            await self.numeric(n.ERR_NEEDMOREPARAMS, "PASS", "Not enough parameters")
            return
        self._pass = message.params[0]

    async def _on_nick(self, message: IrcMessage) -> None:
        if not message.params or not message.params[0]:
            await self.numeric(n.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        # Kept only to be answered: the nick on this gateway is the node's name.
        self._nick = message.params[0][:NICKLEN]

    async def _on_user(self, message: IrcMessage) -> None:
        if len(message.params) < 4:
            await self.numeric(n.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
            return
        self._user = True

    def hold_registration(self, hold: bool) -> None:
        self._cap_pending = hold

    async def _maybe_register(self) -> None:
        if self._nick is None or not self._user or self._cap_pending:
            return
        if self._pass is None or not hmac.compare_digest(
            self._pass.encode("utf-8", "surrogatepass"), self.password.encode()
        ):
            why = "no password" if self._pass is None else "wrong password"
            self.limited.warning("irc.refused", reason=why, remote=self.remote)
            await trio.sleep(self.limits.refusal_delay)
            await self.numeric(n.ERR_PASSWDMISMATCH, "Password incorrect")
            raise Closed(f"{why} (PASS)")
        self.registered = True
        own = nicks_of(self.node).get(self.node.node_id)
        self.nick = own if own is not None and is_valid_nick(own) else "chat"
        self.log.info("irc.registered", caps=sorted(self.caps))
        await self.commands.welcome(renamed=fold(self._nick) != fold(self.nick))


def _writable(param: str) -> bool:
    return bool(param) and " " not in param and not param.startswith(":")
