"""The control socket: JSON Lines requests from chatctl (or any program) over a Unix socket.

Who may use it: ``chatd.control.access``; anyone else is answered ``forbidden``, naming
the uid refused and why, and logged (``control.refused``). The socket file's mode lets in
no more than needed: 0600, 0660 with the group of a single ``--control-gid``,
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
import os
import socket
from pathlib import Path

import trio

from chat.log import Logger
from chat.wire import (
    DecodeError,
    ErrorBody,
    ErrorResponse,
    IrcView,
    LeaveRequest,
    decode_json,
    decode_request,
)
from chatd.control.access import ControlAccess, peer_credentials, supplementary_groups
from chatd.control.ops import Operations, Stalled, Streamed, write_answer
from chatd.control.socket_file import ControlSocketError
from chatd.core.effects import NodeError
from chatd.lines import LineReader, LineTimeout
from chatd.log_limit import LogLimiter
from chatd.runtime import CoreFailed, Runtime

# A request line longer than this is refused: a 4 KiB text JSON-escaped is far below it.
MAX_REQUEST_BYTES = 64 * 1024
# How long a client turned away (`busy`, `forbidden`) has to send its request and read
# the answer.
BUSY_LINGER = 1.0


class ControlServer:
    def __init__(
        self,
        runtime: Runtime,
        path: Path,
        log: Logger,
        access: ControlAccess | None = None,
        irc: IrcView | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.path = path
        self.log = log
        self.access = access or ControlAccess(owner=os.getuid())
        self.limited = LogLimiter(log)
        self.clients = 0  # connections being served
        self.ops = Operations(runtime, log, self.limited, irc)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
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
            answer = await self.ops.answer(request, stream)
        except NodeError as exc:
            self.log.info("control.refused", op=op, code=exc.code, reason=str(exc))
            await self._answer(stream, _error(exc.code, str(exc)))
            return True
        except (trio.BrokenResourceError, trio.ClosedResourceError, Stalled):
            raise  # the client's doing, handled by _handle
        except Exception as exc:
            # A bug of ours: say so, with a traceback (the core's are logged by the
            # runtime already), and end this connection only.
            if not isinstance(exc, CoreFailed):
                self.log.exception("control.failed", op=op)
            await self._answer(stream, _error("internal", f"{op} failed; see chatd's log"))
            return False
        if isinstance(answer, Streamed):
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

    async def _answer(self, stream: trio.SocketStream, answer: object) -> None:
        await write_answer(stream, answer, self.config.control_write_timeout)


def _error(code: str, message: str) -> ErrorResponse:
    return ErrorResponse(ErrorBody(code, message))
