"""The node's peer links: incoming connections served, outgoing ones dialed as the core
asks (``Dial``/``Undial``), each through the handshake, then run until it closes.

A wanted peer is dialed again, with jittered exponential backoff, whenever no link to it
is up. A link that is up stays up when the core stops wanting it (frames may be in flight
on it); it closes when the peer leaves or is dropped. Only attempts still dialing are
called off.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import trio

from chat.wire import Frame, Hello
from chatd.peers import HandshakeFailed, PeerLink, handshake, hello_for
from chatd.transport import Channel, ChannelClosed, ConnectError, Transport

if TYPE_CHECKING:
    from chatd.runtime import Runtime


class PeerLinks:
    def __init__(self, runtime: Runtime, transport: Transport, rng: random.Random) -> None:
        self.runtime = runtime
        self.transport = transport
        self.rng = rng  # backoff jitter
        self.up: dict[str, PeerLink] = {}
        self.wanted: dict[str, str] = {}  # peer -> address, from Dial until Undial
        self._dialers: dict[str, trio.CancelScope] = {}
        self.all_gone = trio.Event()
        # Why the latest dial to a peer failed (``cause`` below), until a dial succeeds.
        self.dial_failures: dict[str, str] = {}

    # What the core asks --------------------------------------------------------------------

    def dial(self, peer: str, address: str) -> None:
        self.wanted[peer] = address

    def undial(self, peer: str) -> None:
        self.wanted.pop(peer, None)

    def reconcile(self) -> None:
        """Dial every wanted peer that has no link or dialer; call off the attempts to
        peers no longer wanted (after every transition)."""
        for peer in self.wanted:
            if peer not in self.up and peer not in self._dialers:
                scope = trio.CancelScope()
                self._dialers[peer] = scope
                self.runtime.spawn(self._dial, peer, scope)
        for peer in [p for p in self._dialers if p not in self.wanted and p not in self.up]:
            self._dialers.pop(peer).cancel()

    # Links ----------------------------------------------------------------------------------

    async def serve(self, channel: Channel) -> None:
        """Handle one incoming connection: handshake, then the link."""
        try:
            hello = await self._handshake(channel, expected=None)
        except (HandshakeFailed, ChannelClosed) as exc:
            self.runtime.log.warning("peer.refused", remote=channel.remote, reason=str(exc))
            return
        channel.authenticated()
        await self._run_link(channel, hello)

    def finish(self) -> None:
        """Let every link send what is queued, then close (the node is leaving)."""
        for link in list(self.up.values()):
            link.finish()

    async def _handshake(self, channel: Channel, expected: str | None) -> Hello:
        runtime, node = self.runtime, self.runtime.node
        hello = hello_for(node.me, node.term, node.identity.public_key, runtime.keyring is not None)
        # An accepted channel's deadline was set at the TCP accept, so the websocket
        # upgrade and hello/auth share one handshake_timeout (see WebSocketTransport.serve).
        deadline = min(channel.deadline, runtime.now() + runtime.config.handshake_timeout)
        try:
            with trio.fail_at(deadline):
                return await handshake(channel, node.identity, hello, runtime.keyring, expected)
        except trio.TooSlowError:
            raise HandshakeFailed("handshake timed out") from None

    async def _run_link(self, channel: Channel, hello: Hello) -> None:
        runtime, peer = self.runtime, hello.node_id
        link = PeerLink(channel, hello, runtime.config.peer_queue_frames)
        if (old := self.up.get(peer)) is not None:
            old.close("replaced by a newer connection")
        self.up[peer] = link
        self.all_gone = trio.Event()
        runtime.feed(
            "peer.connected", lambda: runtime.node.peer_connected(hello, runtime.now()), peer=peer
        )

        def on_frame(frame: Frame) -> None:
            received = lambda: runtime.node.frame_received(peer, frame, runtime.now())  # noqa: E731
            if not runtime.feed("frame", received, peer=peer, type=frame.TYPE):
                link.close("a frame from this peer could not be handled")

        def on_bad_frame(reason: str) -> None:
            malformed = lambda: runtime.node.frame_malformed(peer, reason, runtime.now())  # noqa: E731
            runtime.feed("frame.malformed", malformed, peer=peer)

        reason = "cancelled"
        try:
            reason = await link.run(on_frame, on_bad_frame)
        finally:
            if self.up.get(peer) is link:
                del self.up[peer]
                runtime.feed(
                    "peer.disconnected",
                    lambda: runtime.node.peer_disconnected(peer, runtime.now()),
                    peer=peer,
                )
            if not self.up:
                self.all_gone.set()
            runtime.log.info("peer.closed", peer=peer, reason=reason)

    async def _dial(self, peer: str, scope: trio.CancelScope) -> None:
        """Keep a link to ``peer`` open while the core wants it at the same address,
        reconnecting with backoff."""
        config = self.runtime.config
        backoff = config.dial_backoff_min
        address = self.wanted.get(peer)
        with scope:
            while address is not None and self.wanted.get(peer) == address:
                try:
                    async with self.transport.open_channel(address, peer) as channel:
                        hello = await self._handshake(channel, expected=peer)
                        channel.authenticated()
                        self.dial_failures.pop(peer, None)
                        backoff = config.dial_backoff_min
                        await self._run_link(channel, hello)
                except (ConnectError, HandshakeFailed, ChannelClosed) as exc:
                    # ``cause``: a few fixed words (refused, timed out, ...) to count by.
                    cause = exc.reason if isinstance(exc, ConnectError) else "handshake failed"
                    self.dial_failures[peer] = cause
                    self.runtime.log.warning(
                        "peer.dial_failed", peer=peer, address=address, reason=str(exc), cause=cause
                    )
                await trio.sleep(backoff * (0.5 + self.rng.random()))
                backoff = min(backoff * 2, config.dial_backoff_max)
        if self._dialers.get(peer) is scope:
            del self._dialers[peer]
            self.reconcile()  # wanted at a new address meanwhile: dial that
