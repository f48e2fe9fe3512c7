"""A TLS stream for trio with OpenSSL on the socket itself: Python's ``ssl.SSLSocket``,
non-blocking, waited on through trio.

``trio.SSLStream`` runs TLS through memory BIOs with a Python layer of locks, retries and
copies around every read and write: 40-60 µs of CPU per frame here, on 100-140 µs for the
whole trip of a plain frame over one link (``bench/tls_frames.py``, S8 in
``bench/README.md``). An ``SSLSocket`` reads and writes the descriptor in C; this class
only waits when OpenSSL says it would block. The cryptography is OpenSSL's either way.

Usage rules that keep it simple, met by ``chatd.transport``: one task receives and one
sends at a time (trio-websocket holds a lock around its writes); a send that is cancelled
midway leaves the stream broken (OpenSSL must retry a write with the same bytes), which is
fine because a cancelled send ends the link anyway.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")
# How often a task retries when OpenSSL needs the direction another task is waiting on
# (a TLS 1.3 key update read while sending, or the reverse): rare, so a short poll.
CROSS_WAIT = 0.001


class TlsSocketStream(trio.abc.Stream):
    """TLS over a connected socket, after ``handshake``; a ``trio.abc.Stream``.

    As trio's own streams: two tasks sending (or receiving) at once is a
    ``trio.BusyResourceError``; after ``aclose`` every call is a
    ``trio.ClosedResourceError``; a peer gone without a close_notify is a
    ``trio.BrokenResourceError`` whose cause says why.
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._closed = False
        self._sending = False
        self._receiving = False
        self._broken: BaseException | None = None

    @classmethod
    async def handshake(
        cls, stream: trio.SocketStream, context: ssl.SSLContext, *, server: bool
    ) -> TlsSocketStream:
        """Take ``stream``'s socket over (``stream`` is left detached) and run the TLS
        handshake; ``trio.BrokenResourceError`` from the ``ssl.SSLError`` on failure, with
        the socket closed."""
        raw = socket.socket(fileno=stream.socket.detach())
        raw.setblocking(False)
        # suppress_ragged_eofs=False: an end of file without close_notify (a crash, or a
        # FIN forged on the path) is a broken stream, never a clean end.
        sock = context.wrap_socket(
            raw, server_side=server, do_handshake_on_connect=False, suppress_ragged_eofs=False
        )
        tls = cls(sock)
        try:
            await tls._io(tls._sock.do_handshake, writing=False)
        except BaseException:
            tls._close()
            raise
        return tls

    # What the link reports --------------------------------------------------------------

    def getpeercert(self) -> bytes | None:
        return self._sock.getpeercert(binary_form=True)

    def cipher(self) -> tuple[str, str, int] | None:
        return self._sock.cipher()

    def version(self) -> str | None:
        return self._sock.version()

    # trio.abc.Stream ---------------------------------------------------------------------

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_open()
            view = memoryview(data)
            try:
                while view:
                    sent = await self._io(self._sock.send, view, writing=True)
                    view = view[sent:]
            except BaseException as exc:
                # A write OpenSSL started must be retried with the same bytes: after a
                # cancellation or an error nothing more can be written.
                self._broken = exc
                raise
            await trio.lowlevel.cancel_shielded_checkpoint()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            self._check_open()
            await trio.lowlevel.wait_writable(self._sock)
        finally:
            self._sending = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_open()
            limit = max_bytes or 65536
            try:
                data = await self._io(self._sock.recv, limit, writing=False)
            except ssl.SSLZeroReturnError:
                data = b""  # the peer's close_notify: a clean end of file
            if data and len(data) < limit:
                data = self._more(data, limit)
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        finally:
            self._receiving = False

    def _more(self, data: bytes, limit: int) -> bytes:
        """``data`` and whatever else is readable now, up to ``limit`` bytes in all.

        OpenSSL returns one TLS record per read, where a plain socket read returns all that
        has arrived: under load (frames queued on the link) one record a call would cost a
        trip through the websocket reader per frame. An error or the end is left for the
        next call to report."""
        parts = [data]
        size = len(data)
        while size < limit:
            try:
                more = self._sock.recv(limit - size)
            except (ssl.SSLError, OSError, ValueError):
                break
            if not more:
                break
            parts.append(more)
            size += len(more)
        return b"".join(parts) if len(parts) > 1 else data

    async def aclose(self) -> None:
        if not self._closed and self._broken is None:
            # Best effort: one non-blocking close_notify, not waiting for the peer's.
            with contextlib.suppress(ssl.SSLError, OSError, ValueError):
                self._sock.unwrap()
        self._close()
        await trio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this stream was closed")

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self._sock)
            self._sock.close()

    async def _io(self, fn: Callable[..., T], *args: object, writing: bool) -> T:
        """``fn(*args)``, waiting through trio while OpenSSL would block; errors become
        ``trio.BrokenResourceError`` (its cause the ``ssl.SSLError`` or ``OSError``)."""
        if self._broken is not None and writing:
            raise trio.BrokenResourceError("an earlier write did not finish") from self._broken
        while True:
            try:
                return fn(*args)
            except ssl.SSLWantReadError:
                await self._wait(readable=True, writing=writing)
            except ssl.SSLWantWriteError:
                await self._wait(readable=False, writing=writing)
            except ssl.SSLZeroReturnError:
                if not writing:
                    raise  # receive_some: a clean end of file
                raise trio.BrokenResourceError("the peer closed the TLS session") from None
            except (ssl.SSLError, OSError, ValueError) as exc:
                if self._closed:
                    raise trio.ClosedResourceError("this stream was closed") from exc
                raise trio.BrokenResourceError(str(exc)) from exc

    async def _wait(self, *, readable: bool, writing: bool) -> None:
        # The receiving task waits to read and the sending one to write; trio lets one task
        # wait per direction, so the other direction is polled.
        if readable != writing:
            if readable:
                await trio.lowlevel.wait_readable(self._sock)
            else:
                await trio.lowlevel.wait_writable(self._sock)
        else:
            await trio.sleep(CROSS_WAIT)
