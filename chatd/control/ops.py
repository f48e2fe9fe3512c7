"""The control socket's requests, one handler each: what the node answers.

A handler returns the one answer to write, or ``Streamed`` when it wrote its own (a
``tail``) and the connection ends. A request the node refuses raises ``NodeError``; the
server answers it with its code."""

from __future__ import annotations

import trio
from attrs import frozen

from chat.log import Logger
from chat.wire import (
    ErrorResponse,
    HistoryRequest,
    HistoryResponse,
    IrcView,
    LeaveRequest,
    NickRequest,
    NickResponse,
    OkResponse,
    Request,
    SendRequest,
    SendResponse,
    StatusRequest,
    StatusResponse,
    TailEnd,
    TailRequest,
    WhoRequest,
    WhoResponse,
    encode,
)
from chatd.config import Config
from chatd.control.views import history_of, line_of, members_of, status_of, view_of
from chatd.core.effects import NodeError, Role
from chatd.core.presence import Presence
from chatd.log_limit import LogLimiter
from chatd.runtime import Runtime

# How long a leaving node gives a tail follower to take the stream's last line.
TAIL_END_LINGER = 1.0

Answer = (
    OkResponse
    | SendResponse
    | NickResponse
    | HistoryResponse
    | StatusResponse
    | WhoResponse
    | ErrorResponse
)


@frozen
class Streamed:
    """The handler wrote its own answers; the connection ends."""


class Stalled(Exception):
    """The client did not take an answer in time."""


async def write_answer(stream: trio.SocketStream, answer: object, limit: float) -> None:
    """Write one answer; ``Stalled`` if the client does not take it within ``limit`` s."""
    with trio.move_on_after(limit):
        await stream.send_all(encode(answer) + b"\n")
        return
    raise Stalled


class Operations:
    def __init__(
        self,
        runtime: Runtime,
        log: Logger,
        limited: LogLimiter,
        irc: IrcView | None,
    ) -> None:
        self.runtime = runtime
        self.config: Config = runtime.config
        self.log = log
        self.limited = limited
        self.irc = irc  # shown by status: the IRC gateway's address and password
        self.followers = 0  # connections in tail --follow

    async def answer(self, request: Request, stream: trio.SocketStream) -> Answer | Streamed:
        runtime = self.runtime
        match request:
            case SendRequest(text):
                if runtime.node.role is Role.LEAVING:
                    raise NodeError("leaving", "this node is leaving")
                return SendResponse(view_of(runtime, runtime.send_text(text)))
            case TailRequest():
                await self._tail(request, stream)
                return Streamed()
            case HistoryRequest():
                return HistoryResponse(history_of(runtime))
            case StatusRequest():
                return StatusResponse(status_of(runtime, self.irc))
            case WhoRequest():
                return WhoResponse(members_of(runtime))
            case NickRequest(name):
                runtime.rename(name)
                return NickResponse(runtime.node.me.name)
            case LeaveRequest():
                self.log.info("control.leave")
                runtime.request_leave()
                return OkResponse()

    async def _tail(self, request: TailRequest, stream: trio.SocketStream) -> None:
        if request.last < 0:
            raise NodeError("bad-request", "last must be ≥ 0")
        if not request.follow:
            recent = self.runtime.node.recent(request.last)
            timeout = self.config.control_write_timeout
            await write_answer(stream, OkResponse(), timeout)
            for message in recent:
                line = line_of(self.runtime, message, request.events)
                await write_answer(stream, line, timeout)
            return
        if self.followers >= self.config.tail_followers_max:
            self.limited.warning("control.busy", followers=self.followers)
            raise NodeError("busy", f"already {self.followers} tail followers; try again later")
        self.followers += 1
        try:
            await self._follow(request, stream)
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client hung up (e.g. `chatctl tail -f | head` once head exits)
        finally:
            self.followers -= 1

    async def _follow(self, request: TailRequest, stream: trio.SocketStream) -> None:
        """The recent messages, then each new one, until the client hangs up or falls
        ``tail_queue_messages`` behind (the subscription is dropped: cut it off at once,
        even mid-write to a client that stopped reading)."""
        runtime = self.runtime
        async with trio.open_nursery() as nursery:
            cut_off = nursery.cancel_scope
            # Subscribe before the snapshot, so nothing falls between the two.
            live = runtime.fanout.subscribe(on_drop=cut_off.cancel, presence=request.events)
            with live:
                recent = runtime.node.recent(request.last)
                nursery.start_soon(_cancel_on_eof, stream, cut_off)
                # No write deadline here: a pager the user paused is allowed to lag, up to
                # the subscription's queue.
                await stream.send_all(encode(OkResponse()) + b"\n")
                for message in recent:
                    line = line_of(runtime, message, request.events)
                    await stream.send_all(encode(line) + b"\n")
                shown = {m.id for m in recent}
                async for item in live:
                    if isinstance(item, Presence) or item.id not in shown:
                        line = line_of(runtime, item, request.events)
                        await stream.send_all(encode(line) + b"\n")
                if runtime.node.role is Role.LEAVING:
                    # The node left cleanly: say so, so that the client can tell this from
                    # a lost connection. Shielded: the node stops (cancelling this task)
                    # right after its subscriptions end; a moment at most.
                    with trio.CancelScope(shield=True), trio.move_on_after(TAIL_END_LINGER):
                        await stream.send_all(encode(TailEnd()) + b"\n")
                cut_off.cancel()  # the node is stopping


async def _cancel_on_eof(stream: trio.SocketStream, scope: trio.CancelScope) -> None:
    """While a tail follows, notice the client hanging up (it sends nothing more)."""
    try:
        while await stream.receive_some(4096):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()
