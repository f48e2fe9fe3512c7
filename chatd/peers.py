"""One peer connection: the handshake, then a reader that always drains and one writer.

Writes go through a bounded queue that the runtime fills without waiting: a peer that
stops reading fills its queue and is disconnected, instead of stalling the node. The
writer sends every frame queued when it wakes in one write of the stream.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import attrs
import trio

from chat import identity
from chat.auth import Keyring, handshake_material, peer_proof
from chat.identity import Identity
from chat.wire import (
    PROTOCOL_VERSION,
    Auth,
    DecodeError,
    Frame,
    Hello,
    MemberRecord,
    decode_frame,
    encode_frame,
)
from chatd.transport import Channel, ChannelClosed

# An authenticated peer may send a few bad frames (a newer version, a bug); past this many
# in a row it is disconnected.
MAX_BAD_FRAMES = 100
# The writer stops adding queued frames to one write past this many bytes (a history
# chunk alone may be larger): a burst costs one copy of at most this much.
BATCH_BYTES = 256 * 1024

F = TypeVar("F", Hello, Auth)


def hello_for(me: MemberRecord, term: int, public_key: str, secure: bool) -> Hello:
    """The ``hello`` a node opens with; ``handshake`` puts a fresh nonce in."""
    return Hello(
        protocol_version=PROTOCOL_VERSION,
        node_id=me.node_id,
        name=me.name,
        address=me.address,
        public_address=me.public_address,
        priority=me.priority,
        term=term,
        nonce="",
        public_key=public_key,
        secure=secure,
        reachable=me.reachable,
        observed_address=me.observed_address,
    )


class HandshakeFailed(Exception):
    """The peer could not prove who it is or that it holds the group secret."""


async def handshake(
    channel: Channel,
    ident: Identity,
    hello: Hello,
    keyring: Keyring | None,
    expected_peer: str | None,
) -> Hello:
    """Exchange ``hello`` and ``auth``; return the peer's proven hello.

    Both ends send at once, so neither waits on the other to speak first. Raises
    ``HandshakeFailed`` (or ``ChannelClosed``); the caller bounds it in time.
    """
    nonce = secrets.token_hex(16)
    hello = attrs.evolve(hello, nonce=nonce)
    await channel.send(encode_frame(hello))
    theirs = await _receive(channel, Hello)
    if theirs.protocol_version != PROTOCOL_VERSION:
        raise HandshakeFailed(
            f"protocol version {theirs.protocol_version}, ours {PROTOCOL_VERSION}"
        )
    if not identity.key_matches_id(theirs.public_key, theirs.node_id):
        raise HandshakeFailed("node-id is not the fingerprint of its public key")
    if theirs.node_id == ident.node_id:
        raise HandshakeFailed("connected to itself")
    if expected_peer is not None and theirs.node_id != expected_peer:
        raise HandshakeFailed(f"expected node {expected_peer}, found {theirs.node_id}")
    if theirs.secure != (keyring is not None):
        raise HandshakeFailed(
            "peer runs without a group secret (--insecure)"
            if keyring is not None
            else "peer requires a group secret; this node runs --insecure"
        )
    if channel.peer_key is not None and not identity.key_is(theirs.public_key, channel.peer_key):
        # The TLS session is held by another key than the one this hello names: whoever
        # terminated TLS is not the node it speaks for (a man in the middle).
        raise HandshakeFailed("hello names another key than the TLS certificate's")
    mine = handshake_material(
        ident.node_id, theirs.node_id, ident.public_key, theirs.public_key, nonce, theirs.nonce
    )
    await channel.send(
        encode_frame(
            Auth(
                proof=peer_proof(keyring.primary, mine) if keyring is not None else "",
                signature=ident.sign_bytes(mine),
            )
        )
    )
    auth = await _receive(channel, Auth)
    expected = handshake_material(
        theirs.node_id, ident.node_id, theirs.public_key, ident.public_key, theirs.nonce, nonce
    )
    if keyring is not None and not keyring.accepts(
        lambda secret: peer_proof(secret, expected), auth.proof
    ):
        raise HandshakeFailed("wrong group secret")
    if not identity.verify_bytes(theirs.public_key, expected, auth.signature):
        raise HandshakeFailed("signature does not match node-id")
    return theirs


async def _receive(channel: Channel, kind: type[F]) -> F:
    try:
        frame = decode_frame(await channel.receive())
    except DecodeError as exc:
        raise HandshakeFailed(f"bad handshake frame: {exc}") from None
    if not isinstance(frame, kind):
        raise HandshakeFailed(f"expected {kind.__name__.lower()}, got {frame.TYPE}")
    return frame


class PeerLink:
    """An authenticated connection to one peer."""

    def __init__(self, channel: Channel, hello: Hello, queue_frames: int) -> None:
        self.channel = channel
        self.hello = hello
        self.peer = hello.node_id
        # Frames not yet written. The writer takes all that are queued when it wakes and
        # writes them at once: one stream write for a burst, not one per frame.
        self._queue: deque[bytes] = deque()
        self._queue_frames = queue_frames
        self._writer = trio.lowlevel.ParkingLot()
        self._taking = True  # until finish() or close()
        self._cancel = trio.CancelScope()
        self.close_reason: str | None = None

    def send_nowait(self, data: bytes) -> bool:
        """Queue a frame; on a full queue or a closed link, close it and return False."""
        if not self._taking:
            return False
        if len(self._queue) >= self._queue_frames:
            self.close("send queue full: peer is not reading")
            return False
        self._queue.append(data)
        if self._writer:
            self._writer.unpark()
        return True

    def close(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self._taking = False
        self._cancel.cancel()

    def finish(self) -> None:
        """Stop taking frames; the writer sends what is queued, then the link ends."""
        self._taking = False
        self._writer.unpark_all()

    async def run(
        self, on_frame: Callable[[Frame], None], on_bad_frame: Callable[[str], None]
    ) -> str:
        """Pump frames until either side closes; return why the link ended."""
        try:
            with self._cancel:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write, nursery.cancel_scope)
                    await self._read(on_frame, on_bad_frame)
                    nursery.cancel_scope.cancel()
        finally:
            self._taking = False
            self._queue.clear()
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await self.channel.aclose()
        return self.close_reason or "closed"

    async def _read(
        self, on_frame: Callable[[Frame], None], on_bad_frame: Callable[[str], None]
    ) -> None:
        bad = 0
        while True:
            try:
                data = await self.channel.receive()
            except ChannelClosed as exc:
                self.close_reason = self.close_reason or f"peer closed: {exc}"
                return
            try:
                frame = decode_frame(data)
            except DecodeError as exc:
                bad += 1
                on_bad_frame(str(exc))
                if bad >= MAX_BAD_FRAMES:
                    self.close_reason = "too many bad frames"
                    return
                continue
            bad = 0
            on_frame(frame)

    async def _write(self, scope: trio.CancelScope) -> None:
        queue = self._queue
        while queue or self._taking:
            if not queue:
                await self._writer.park()
                continue
            batch = [queue.popleft()]
            size = len(batch[0])
            while queue and size < BATCH_BYTES:
                batch.append(data := queue.popleft())
                size += len(data)
            try:
                await self.channel.send_many(batch)
            except ChannelClosed as exc:
                self.close_reason = self.close_reason or f"peer closed: {exc}"
                break
        # Queue drained after finish(), or the peer went away: the link is done.
        scope.cancel()
