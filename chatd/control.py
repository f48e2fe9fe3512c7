"""The control socket: JSON Lines requests from chatctl (or any program) over a Unix socket.

Who may use it (``ControlAccess``): root, the daemon's own uid, and the operators given
by ``--control-uid`` and ``--control-gid``; anyone else is answered ``forbidden``, naming
the uid refused and why, and logged (``control.refused``). The peer's credentials come
from ``SO_PEERCRED``; its supplementary groups from ``/proc/PID/status``. The socket file's
mode lets in no more than needed: 0600, 0660 with the group of a single ``--control-gid``,
else 0666 with the credential check alone deciding.

Each connection may carry several requests in turn; ``tail`` with ``follow`` holds it
until the client closes. Bad input gets an error answer with a stable
code and a log line, never a crash. No client can stop or stall the node or lock others
out: connections and followers are capped (``busy``), a started request line and each
answer have a deadline, a follower too far behind is cut off, and any exception from a
connection (a bug included: ``internal``) ends that connection only. Bounds: ``Config``.
"""

from __future__ import annotations

import errno
import math
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from attrs import frozen

from chat.exits import EXIT_FAILURE, Fatal
from chat.names import display_name, display_names
from chat.wire import (
    DecodeError,
    ErrorBody,
    ErrorResponse,
    HistoryRequest,
    HistoryResponse,
    IrcView,
    LeaveRequest,
    MemberView,
    Message,
    MessageView,
    NickRequest,
    NickResponse,
    OkResponse,
    PeerView,
    PresenceView,
    Request,
    SendRequest,
    SendResponse,
    Status,
    StatusRequest,
    StatusResponse,
    TaggedMessage,
    TaggedPresence,
    TailEnd,
    TailRequest,
    WhoRequest,
    WhoResponse,
    decode_json,
    decode_request,
    encode,
)
from chatd.core.abuse import TokenBucket
from chatd.core.node import NodeError, Role
from chatd.core.presence import Presence
from chatd.runtime import Runtime

# A request line longer than this is refused: a 4 KiB text JSON-escaped is far below it.
MAX_REQUEST_BYTES = 64 * 1024
# How long a client turned away (`busy`, `forbidden`) has to send its request and read
# the answer.
BUSY_LINGER = 1.0
# How long a leaving node gives a tail follower to take the stream's last line.
TAIL_END_LINGER = 1.0


class ControlSocketError(Fatal):
    """The control socket cannot be set up; the message says why, for the operator."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_FAILURE, message)


class LineTimeout(Exception):
    """A request line was started but not finished in time."""


class Stalled(Exception):
    """The client did not take an answer in time."""


class LineReader:
    """Newline-delimited reads from a stream, with a cap on line length and, once a line has
    started, a deadline for the rest of it."""

    def __init__(
        self, stream: trio.abc.ReceiveStream, limit: int, timeout: float = math.inf
    ) -> None:
        self._stream = stream
        self._limit = limit
        self._timeout = timeout
        self._buffer = bytearray()
        self._deadline = math.inf  # for the partial line in the buffer

    async def next_line(self) -> bytes | None:
        """The next line without its newline; None at end of stream.

        Raises ``DecodeError`` when a line exceeds the limit, ``LineTimeout`` when a line
        is still unfinished ``timeout`` seconds after this call first waited for its rest.
        """
        while True:
            end = self._buffer.find(b"\n")
            if end > self._limit:  # a whole line arrived at once: still too large
                raise DecodeError(f"request line over {self._limit} bytes")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._deadline = math.inf
                return line
            if len(self._buffer) > self._limit:
                raise DecodeError(f"request line over {self._limit} bytes")
            if self._buffer and self._deadline == math.inf:
                # The clock starts when we wait, not when the bytes came: time spent
                # answering the previous request is not the client's.
                self._deadline = trio.current_time() + self._timeout
            with trio.move_on_at(self._deadline if self._buffer else math.inf):
                chunk = await self._stream.receive_some(65536)
                if not chunk:
                    # The last line may lack its newline. Empty the buffer, or every later
                    # call would return that line again (a half-closed client's request).
                    line = bytes(self._buffer)
                    self._buffer.clear()
                    return line if line.strip() else None
                self._buffer += chunk
                continue
            raise LineTimeout(f"request line not finished within {self._timeout:g} s")


@frozen
class ControlAccess:
    """Who may use the control socket, besides root (who may always)."""

    owner: int  # the daemon's own uid
    uids: frozenset[int] = frozenset()  # --control-uid
    gids: frozenset[int] = frozenset()  # --control-gid: a peer's primary or supplementary group

    @property
    def shared(self) -> bool:
        """Whether anyone but root and the owner may connect."""
        return bool(self.uids or self.gids)

    def allowed(self) -> str:
        """The rule, as said to a refused client: "root, uid 1000 and members of gid 50"."""
        who = ["root"] + ([f"uid {self.owner} (chatd's own)"] if self.owner != 0 else [])
        who += [f"uid {uid}" for uid in sorted(self.uids)]
        who += [f"members of gid {gid}" for gid in sorted(self.gids)]
        return ", ".join(who[:-1]) + " and " + who[-1]

    def refusal(self, uid: int, gid: int, groups: Callable[[], frozenset[int]]) -> str | None:
        """Why a peer with ``uid`` and primary ``gid`` is refused, or None if it is let in.
        ``groups`` gives its supplementary groups (read only when a group could decide)."""
        if uid in (0, self.owner) or uid in self.uids or gid in self.gids:
            return None
        if self.gids and self.gids & groups():
            return None
        return f"only {self.allowed()} may use it"


def supplementary_groups(pid: int) -> frozenset[int]:
    """The supplementary groups of process ``pid`` (the ``Groups:`` line of
    ``/proc/PID/status``); empty if that cannot be read (the process is gone, or /proc
    hides other users' processes, as systemd's ``ProtectProc=invisible`` does)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for row in status:
                if row.startswith("Groups:"):
                    return frozenset(int(g) for g in row.split()[1:])
    except (OSError, ValueError):
        pass
    return frozenset()


def prepare_socket_path(path: Path, explicit: bool, shared: bool = False) -> None:
    """Make the socket's directory (default locations only) and clear a stale socket file.

    A directory made for a ``shared`` socket may be searched by anyone (0711), so that
    operators reach the socket; its mode and the credential check decide the rest."""
    if not path.parent.is_dir():
        if explicit:
            raise ControlSocketError(
                f"cannot create control socket {path}: no directory {path.parent}"
            )
        path.parent.mkdir(mode=0o711 if shared else 0o700, parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # left by a node that did not stop cleanly
        else:
            raise ControlSocketError(f"another chatd is already listening on {path}")
        finally:
            probe.close()


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """The connecting process's (pid, uid, gid), as the kernel saw it at ``connect``."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return int(pid), int(uid), int(gid)


class LogLimiter:
    """Warnings about clients, at most ``burst`` at once and ``rate`` a second per event.

    One abusive client can cause a line per connection or request; the node's log must not
    become its megaphone. The next line logged says how many were left out.
    """

    def __init__(self, log: Any, burst: float = 20, rate: float = 2) -> None:
        self._log = log
        self._burst = burst
        self._rate = rate
        self._buckets: dict[str, TokenBucket] = {}
        self._left_out: dict[str, int] = {}

    def warning(self, event: str, **fields: Any) -> None:
        bucket = self._buckets.setdefault(event, TokenBucket(self._rate, self._burst))
        if not bucket.allow(trio.current_time()):
            self._left_out[event] = self._left_out.get(event, 0) + 1
            return
        if left_out := self._left_out.pop(event, 0):
            fields["left-out"] = left_out
        self._log.warning(event, **fields)


class ControlServer:
    def __init__(
        self,
        runtime: Runtime,
        path: Path,
        log: Any,
        access: ControlAccess | None = None,
        irc: IrcView | None = None,
    ) -> None:
        self.runtime = runtime
        self.irc = irc  # shown by status: the IRC gateway's address and password
        self.config = runtime.config
        self.path = path
        self.log = log
        self.access = access or ControlAccess(owner=os.getuid())
        self.limited = LogLimiter(log)
        self.clients = 0  # connections being served
        self.followers = 0  # of those, in tail --follow
        self._ops: dict[type[Request], Callable[[Any, trio.SocketStream], Awaitable[Any]]] = {
            SendRequest: self._send,
            TailRequest: self._tail,
            HistoryRequest: self._history,
            StatusRequest: self._status,
            WhoRequest: self._who,
            LeaveRequest: self._leave,
            NickRequest: self._nick,
        }

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Bind (mode 0600, then widened for operators: ``ControlAccess``), report started,
        serve until cancelled, then unlink the socket."""
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            await sock.bind(str(self.path))
        except OSError as exc:
            sock.close()
            raise ControlSocketError(
                f"cannot create control socket {self.path}: {exc.strerror}"
            ) from None
        finally:
            os.umask(old_umask)
        try:
            self._open_to_operators()
            sock.listen(self.config.control_backlog)
            listener = trio.SocketListener(sock)
            task_status.started()
            await trio.serve_listeners(self._handle, [listener])
        finally:
            try:
                self.path.unlink()
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise

    def _open_to_operators(self) -> None:
        """Widen the socket file's mode to what the access rule allows (before listening)."""
        access, mode = self.access, 0o600
        if access.shared:
            mode = 0o666  # other uids, or several groups: the credential check decides
            if not access.uids and len(access.gids) == 1:
                (gid,) = access.gids
                try:
                    os.chown(self.path, -1, gid)
                    mode = 0o660
                except OSError as exc:  # chatd is neither root nor in that group
                    self.log.warning(
                        "control.chgrp_failed", gid=gid, reason=(exc.strerror or str(exc)).lower()
                    )
            os.chmod(self.path, mode)
        self.log.info(
            "control.access",
            mode=f"{mode:04o}",
            uids=sorted({0, access.owner, *access.uids}),
            gids=sorted(access.gids),
        )

    async def _handle(self, stream: trio.SocketStream) -> None:
        """Serve one connection. Nothing a client does or any bug in an op ends the node:
        every exception stops here (nested nurseries raise them in groups, hence except*)."""
        try:
            async with stream:
                if self.clients >= self.config.control_clients_max:
                    self.limited.warning("control.busy", clients=self.clients)
                    await self._turn_away(
                        stream,
                        _error("busy", f"already serving {self.clients} clients; try again later"),
                    )
                    return
                self.clients += 1
                try:
                    await self._serve_client(stream)
                finally:
                    self.clients -= 1
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        except* Stalled:
            self.limited.warning("control.stalled", reason="the client does not read answers")
        except* Exception:
            self.log.exception("control.failed")

    async def _serve_client(self, stream: trio.SocketStream) -> None:
        try:
            pid, uid, gid = peer_credentials(stream.socket)  # type: ignore[arg-type]
        except OSError:
            pid = uid = gid = -1
        why = self.access.refusal(uid, gid, lambda: supplementary_groups(pid))
        if why is not None:
            self.limited.warning("control.refused", uid=uid, gid=gid, pid=pid, reason=why)
            await self._turn_away(
                stream, _error("forbidden", f"uid {uid} may not use this chatd's socket: {why}")
            )
            return
        reader = LineReader(stream, MAX_REQUEST_BYTES, self.config.control_line_timeout)
        try:
            while (line := await reader.next_line()) is not None:
                if not line.strip():
                    continue
                if not await self._dispatch(line, stream):
                    return
        except DecodeError as exc:
            self.limited.warning("control.bad_request", reason=str(exc))
            await self._answer(stream, _error("too-large", str(exc)))
        except LineTimeout as exc:
            self.limited.warning("control.timeout", reason=str(exc))
            await self._answer(stream, _error("bad-request", str(exc)))

    async def _dispatch(self, line: bytes, stream: trio.SocketStream) -> bool:
        """Answer one request; False when the connection must end (tail, leave, a bug)."""
        try:
            request = decode_request(decode_json(line, MAX_REQUEST_BYTES))
        except DecodeError as exc:
            self.limited.warning("control.bad_request", reason=str(exc))
            await self._answer(stream, _error("bad-request", str(exc)))
            return True
        op = type(request).OP
        self.log.debug("control.request", op=op)
        try:
            answer = await self._ops[type(request)](request, stream)
        except NodeError as exc:
            self.log.info("control.refused", op=op, code=exc.code, reason=str(exc))
            await self._answer(stream, _error(exc.code, str(exc)))
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError, Stalled):
            raise  # the client's doing, handled by _handle
        except Exception:
            # A bug in the op: say so, with a traceback, and end this connection only.
            self.log.exception("control.failed", op=op)
            await self._answer(stream, _error("internal", f"{op} failed; see chatd's log"))
            return False
        if answer is None:
            return False
        await self._answer(stream, answer)
        return not isinstance(request, LeaveRequest)

    async def _turn_away(self, stream: trio.SocketStream, answer: ErrorResponse) -> None:
        """Answer a client that is not served before it has sent anything, then close.

        Closing at once would break the client's write of its request (EPIPE) before it
        reads this answer; give it a moment to send and hang up."""
        await self._answer(stream, answer)
        with trio.move_on_after(BUSY_LINGER):
            while await stream.receive_some(65536):
                pass

    async def _answer(self, stream: trio.SocketStream, answer: Any) -> None:
        """Write one answer; ``Stalled`` if the client does not take it in time."""
        with trio.move_on_after(self.config.control_write_timeout):
            await stream.send_all(encode(answer) + b"\n")
            return
        raise Stalled

    async def _send(self, request: SendRequest, stream: trio.SocketStream) -> Any:
        if self.runtime.node.role is Role.LEAVING:
            raise NodeError("leaving", "this node is leaving")
        message = self.runtime.send_text(request.text)
        return SendResponse(view_of(self.runtime, message))

    async def _tail(self, request: TailRequest, stream: trio.SocketStream) -> None:
        if request.last < 0:
            raise NodeError("bad-request", "last must be ≥ 0")
        if not request.follow:
            recent = self.runtime.node.recent(request.last)
            await self._answer(stream, OkResponse())
            for message in recent:
                await self._answer(stream, line_of(self.runtime, message, request.events))
            return None
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
        return None

    async def _follow(self, request: TailRequest, stream: trio.SocketStream) -> None:
        """The recent messages, then each new one, until the client hangs up or falls
        ``tail_queue_messages`` behind (the subscription is dropped: cut it off at once,
        even mid-write to a client that stopped reading)."""
        async with trio.open_nursery() as nursery:
            cut_off = nursery.cancel_scope
            # Subscribe before the snapshot, so nothing falls between the two.
            live = self.runtime.subscribe(on_drop=cut_off.cancel, presence=request.events)
            with live:
                recent = self.runtime.node.recent(request.last)
                nursery.start_soon(_cancel_on_eof, stream, cut_off)
                # No write deadline here: a pager the user paused is allowed to lag, up to
                # the subscription's queue.
                await stream.send_all(encode(OkResponse()) + b"\n")
                for message in recent:
                    line = line_of(self.runtime, message, request.events)
                    await stream.send_all(encode(line) + b"\n")
                shown = {m.id for m in recent}
                async for item in live:
                    if isinstance(item, Presence) or item.id not in shown:
                        line = line_of(self.runtime, item, request.events)
                        await stream.send_all(encode(line) + b"\n")
                if self.runtime.node.role is Role.LEAVING:
                    # The node left cleanly: say so, so that the client can tell this from
                    # a lost connection. Shielded: the node stops (cancelling this task)
                    # right after its subscriptions end; a moment at most.
                    with trio.CancelScope(shield=True), trio.move_on_after(TAIL_END_LINGER):
                        await stream.send_all(encode(TailEnd()) + b"\n")
                cut_off.cancel()  # the node is stopping

    async def _history(self, request: HistoryRequest, stream: trio.SocketStream) -> Any:
        shown = _shown(self.runtime)
        members = [(m.node_id, m.name) for m in self.runtime.node.snapshot().members]

        def display(message: Message) -> str:
            # An author who is no longer a member is told apart from members named alike.
            if message.node_id not in shown:
                shown[message.node_id] = display_name(message.node_id, message.name, members)
            return shown[message.node_id]

        return HistoryResponse(
            [MessageView.of(m, display(m)) for m in self.runtime.node.messages()]
        )

    async def _status(self, request: StatusRequest, stream: trio.SocketStream) -> Any:
        return StatusResponse(status_of(self.runtime, self.irc))

    async def _who(self, request: WhoRequest, stream: trio.SocketStream) -> Any:
        return WhoResponse(members_of(self.runtime))

    async def _nick(self, request: NickRequest, stream: trio.SocketStream) -> Any:
        self.runtime.rename(request.name)
        return NickResponse(self.runtime.node.me.name)

    async def _leave(self, request: LeaveRequest, stream: trio.SocketStream) -> Any:
        self.log.info("control.leave")
        self.runtime.request_leave()
        return OkResponse()


def status_of(runtime: Runtime, irc: IrcView | None = None) -> Status:
    node = runtime.node.snapshot()
    now = runtime.now()
    members = {m.node_id: m for m in node.members}
    peers = []
    for peer, hello in sorted(node.peers.items()):
        link = runtime.links.get(peer)
        cipher = link.channel.cipher if link is not None else None
        heard = round(now - node.last_heard.get(peer, now), 3)
        # The membership has the name now; the hello, the one the link was opened under.
        member = members.get(peer)
        name = member.name if member is not None else hello.name
        peers.append(PeerView(peer, name, heard, cipher is not None, cipher))
    return Status(
        node_id=node.node_id,
        name=node.name,
        address=node.address,
        public_address=node.public_address,
        role=node.role.value,
        coordinator=node.coordinator,
        term=node.term,
        members=list(node.members),
        neighbours=list(node.neighbours),
        vector_clock=node.vector_clock,
        messages=node.messages,
        peers=peers,
        director=runtime.director_error or "ok",
        secure=runtime.keyring is not None and all(p.encrypted for p in peers),
        counters=dict(node.counters),
        irc=irc,
    )


def _shown(runtime: Runtime) -> dict[str, str]:
    """The display name of every current member (chat.names)."""
    return display_names((m.node_id, m.name) for m in runtime.node.snapshot().members)


def view_of(runtime: Runtime, message: Message) -> MessageView:
    members = ((m.node_id, m.name) for m in runtime.node.snapshot().members)
    return MessageView.of(message, display_name(message.node_id, message.name, members))


def line_of(
    runtime: Runtime, item: Message | Presence, tagged: bool
) -> MessageView | TaggedMessage | TaggedPresence:
    """One line of a ``tail``: a message as it always was, or (``tagged``, the ``events``
    form) a message or a presence event tagged with its kind."""
    if isinstance(item, Message):
        view = view_of(runtime, item)
        return TaggedMessage(message=view) if tagged else view
    members = ((m.node_id, m.name) for m in runtime.node.snapshot().members)
    shown = display_name(item.node_id, item.name, members)
    return TaggedPresence(
        presence=PresenceView(item.event, item.node_id, item.name, shown, item.old_name, item.at)
    )


def members_of(runtime: Runtime) -> list[MemberView]:
    node = runtime.node.snapshot()
    now = runtime.now()
    shown = _shown(runtime)
    views = []
    for member in node.members:
        heard = node.last_heard.get(member.node_id)
        spoke = runtime.last_delivered.get(member.node_id)
        views.append(
            MemberView(
                node_id=member.node_id,
                name=member.name,
                address=member.address,
                public_address=member.public_address,
                priority=member.priority,
                role="coordinator" if member.node_id == node.coordinator else "member",
                link="self"
                if member.node_id == node.node_id
                else "up"
                if member.node_id in node.peers
                else "down",
                last_heard=None if heard is None else round(now - heard, 3),
                display=shown.get(member.node_id, member.name),
                idle=None if spoke is None else round(now - spoke, 3),
            )
        )
    return views


def _error(code: str, message: str) -> ErrorResponse:
    return ErrorResponse(ErrorBody(code, message))


async def _cancel_on_eof(stream: trio.SocketStream, scope: trio.CancelScope) -> None:
    """While a tail follows, notice the client hanging up (it sends nothing more)."""
    try:
        while await stream.receive_some(4096):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()
