"""A malicious member for tests: holds the group secret and its own key, sends any frame.

A ``Rogue`` is a real member as far as a node can tell: it proves the secret and its
Ed25519 key in the real handshake (``chatd.peers.handshake``), may ``join``, and keeps
its links alive with heartbeats. What it sends is up to the test: validly signed messages
with any sequence number or clock, badly signed ones, two messages for one sequence
number, coordinator claims of any term, elections, ``nodes`` naming itself coordinator,
or raw bytes. It works over any ``chatd.transport.Transport``: the memory network of
in-process clusters (``chat_testing.memory``) or ``WebSocketTransport`` against real
``chatd`` processes.

    rogue = Rogue(Identity.generate(), "mallory", secret, transport)
    async with rogue.connect(coordinator_address) as link:
        await link.join()
        await link.wait_admitted()
        await link.send(rogue.claim(2**63 - 1))

    async with open_links(rogue, addresses) as links:   # e.g. one per node
        a, b = rogue.equivocation(1, "yes", "no")
        for i, link in enumerate(links):
            await link.send(a if i % 2 else b)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import orjson
import trio

from chat.auth import Keyring
from chat.identity import Identity, claim_bytes, message_bytes, message_id, sign_claim
from chat.wire import (
    DecodeError,
    Election,
    Frame,
    Heartbeat,
    Hello,
    Join,
    MemberRecord,
    Message,
    Nodes,
    UpdateCoordinator,
    decode_frame,
    encode_frame,
)
from chatd.peers import handshake, hello_for
from chatd.transport import Channel, ChannelClosed, Transport

F = TypeVar("F", bound=Frame)

# Where honest nodes would dial the rogue: nothing listens there, so a dial fails at once
# (the rogue dials them instead; ``open_links`` gives it a link to every node).
UNREACHABLE = "ws://127.0.0.1:1"
# A coordinator drops a member it has not heard from for member_timeout (0.3 s in the
# test profile, 3 s on a LAN): well under both.
HEARTBEAT_INTERVAL = 0.05
HANDSHAKE_TIMEOUT = 10.0


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Rogue:
    """A member that holds the group secret and its own key and may send anything.

    ``priority`` defaults to -1, below every honest node's default, so the rogue can never
    win an election legitimately: any coordinator role it gets is a defect.
    """

    def __init__(
        self,
        identity: Identity,
        name: str,
        secret: bytes | None,
        transport: Transport,
        *,
        priority: int = -1,
        address: str = UNREACHABLE,
        heartbeat_interval: float | None = HEARTBEAT_INTERVAL,
    ) -> None:
        self.identity = identity
        self.name = name
        self.secret = secret
        self.transport = transport
        self.priority = priority
        self.address = address
        self.heartbeat_interval = heartbeat_interval

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    @property
    def record(self) -> MemberRecord:
        return MemberRecord(self.node_id, self.name, self.address, self.address, self.priority)

    def hello(self, term: int = 0) -> Hello:
        return hello_for(self.record, term, self.identity.public_key, self.secret is not None)

    # Connections ---------------------------------------------------------------------------

    @asynccontextmanager
    async def connect(
        self, address: str, *, expected_peer: str | None = None, term: int = 0
    ) -> AsyncIterator[RogueLink]:
        """An authenticated link to the node at ``address``; closed on exit.

        Raises ``chatd.peers.HandshakeFailed`` or ``ChannelClosed`` if the node refuses,
        ``chatd.transport.ConnectError`` if nothing answers.
        """
        async with self.transport.open_channel(address, expected_peer) as channel:
            with trio.fail_after(HANDSHAKE_TIMEOUT):
                keyring = Keyring.of(self.secret) if self.secret is not None else None
                peer = await handshake(
                    channel, self.identity, self.hello(term), keyring, expected_peer
                )
            link = RogueLink(self, channel, peer)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(link._read)
                if self.heartbeat_interval is not None:
                    nursery.start_soon(link._beat, self.heartbeat_interval)
                try:
                    yield link
                finally:
                    nursery.cancel_scope.cancel()

    # Builders ------------------------------------------------------------------------------

    def message(
        self,
        seq: int,
        text: str,
        *,
        clock: Mapping[str, int] | None = None,
        tamper_signature: bool = False,
        name: str | None = None,
        id: str | None = None,
        timestamp: str | None = None,
    ) -> Message:
        """A message signed by the rogue with sequence number ``seq``.

        ``clock`` adds dependencies (the rogue's own entry is always ``seq``); ``id``
        overrides the id derived from (origin, seq); ``tamper_signature`` replaces the
        signature with a valid-looking one over other bytes.
        """
        full = {**(clock or {}), self.node_id: seq}
        message = self.identity.sign(
            self.name if name is None else name,
            timestamp or utc_now(),
            text,
            full,
            id=id if id is not None else message_id(self.node_id, seq),
        )
        if tamper_signature:
            forged = self.identity.sign_bytes(b"not the bytes of this message")
            message = attrs.evolve(message, signature=forged)
        return message

    def message_raw(self, seq: int, text: str, clock: Mapping[str, int]) -> dict[str, Any]:
        """A validly signed message as a raw frame, so its clock may be out of range."""
        full = {**clock, self.node_id: seq}
        id, name, timestamp = message_id(self.node_id, seq), self.name, utc_now()
        signature = self.identity.sign_bytes(
            message_bytes(id, self.node_id, name, timestamp, text, full)
        )
        return {
            "type": Message.TYPE,
            "id": id,
            "node-id": self.node_id,
            "name": name,
            "timestamp": timestamp,
            "message": text,
            "vector-clock": full,
            "public-key": self.identity.public_key,
            "signature": signature,
        }

    def bad_signature(
        self, seq: int, text: str, *, clock: Mapping[str, int] | None = None
    ) -> Message:
        """A message whose signature does not match its contents."""
        return self.message(seq, text, clock=clock, tamper_signature=True)

    def equivocation(
        self, seq: int, text_a: str, text_b: str, clock: Mapping[str, int] | None = None
    ) -> tuple[Message, Message]:
        """Two validly signed, different messages with one (origin, sequence number)."""
        return self.message(seq, text_a, clock=clock), self.message(seq, text_b, clock=clock)

    def claim(
        self,
        term: int,
        coordinator: str | None = None,
        address: str | None = None,
        *,
        signed: bool = True,
    ) -> UpdateCoordinator:
        """``update-coordinator``: ``coordinator`` (default: the rogue) rules ``term``,
        signed by the rogue (as a real claim is), or unsigned."""
        claim = UpdateCoordinator(
            coordinator if coordinator is not None else self.node_id,
            term,
            self.address if address is None else address,
        )
        if not signed:
            return claim
        return sign_claim(self.identity, claim.coordinator, claim.term, claim.address)

    def claim_raw(self, term: int) -> dict[str, Any]:
        """A claim signed by the rogue as a raw frame, so its term may be out of range."""
        signature = self.identity.sign_bytes(
            claim_bytes(self.node_id, term, self.address, self.node_id)
        )
        return {
            "type": UpdateCoordinator.TYPE,
            "coordinator": self.node_id,
            "term": term,
            "address": self.address,
            "signer": self.node_id,
            "public-key": self.identity.public_key,
            "signature": signature,
        }

    def election(self, term: int) -> Election:
        return Election(self.node_id, term)

    def nodes(self, term: int, members: Sequence[MemberRecord] = (), version: int = 1) -> Nodes:
        """``nodes`` naming the rogue coordinator of ``term`` over ``members`` (and itself),
        as a full mesh."""
        records = {m.node_id: m for m in members}
        records[self.node_id] = self.record
        ids = sorted(records)
        return Nodes(
            node=[records[i] for i in ids],
            neighbours={i: [j for j in ids if j != i] for i in ids},
            term=term,
            coordinator=self.node_id,
            version=version,
        )


class RogueLink:
    """One authenticated connection of a ``Rogue`` to a node.

    A background reader drains and records every frame (so the node never cuts the rogue
    off for not reading) until ``stop_reading``; a background task sends heartbeats so
    the node keeps it as a member.
    """

    def __init__(self, rogue: Rogue, channel: Channel, peer: Hello) -> None:
        self.rogue = rogue
        self.channel = channel
        self.peer = peer  # the node's proven hello
        self.received: list[Frame] = []
        self.malformed: list[str] = []  # why each undecodable frame was refused
        self.closed = trio.Event()
        self.close_reason: str | None = None
        self._reading = True
        self._resume = trio.Event()
        self._arrived = trio.Event()

    @property
    def term(self) -> int:
        """The highest term the node has told this link about."""
        terms = [self.peer.term]
        terms += [f.term for f in self.received if isinstance(f, UpdateCoordinator | Nodes)]
        return max(terms)

    # Sending --------------------------------------------------------------------------------

    async def send(self, frame: Frame) -> None:
        """Send any frame; raises ``ChannelClosed`` once the node has closed the link."""
        await self.channel.send(encode_frame(frame))

    async def send_raw(self, data: bytes | Mapping[str, Any]) -> None:
        """Send bytes as they are, or a JSON object (any fields, any values orjson takes)."""
        await self.channel.send(data if isinstance(data, bytes) else orjson.dumps(dict(data)))

    async def join(self, clock: Mapping[str, int] | None = None) -> None:
        await self.send(Join(dict(clock or {})))

    # Receiving ------------------------------------------------------------------------------

    def stop_reading(self) -> None:
        """Stop draining: the node's queue for this link fills up (a deaf member)."""
        self._reading = False

    def resume_reading(self) -> None:
        self._reading = True
        self._resume.set()

    def frames(self, kind: type[F]) -> list[F]:
        return [f for f in self.received if isinstance(f, kind)]

    async def wait_frame(self, kind: type[F], match: Callable[[F], bool] = lambda _: True) -> F:
        """The first frame of ``kind`` received that satisfies ``match``, waiting for it.

        Raises ``ChannelClosed`` if the link closes first; bound it with ``trio.fail_after``.
        """
        while True:
            for frame in self.frames(kind):
                if match(frame):
                    return frame
            if self.closed.is_set():
                raise ChannelClosed(self.close_reason or "closed")
            await _first(self._arrived.wait, self.closed.wait)

    async def wait_admitted(self) -> Nodes:
        """The node's first ``nodes`` that lists the rogue as a member."""
        return await self.wait_frame(
            Nodes, lambda f: any(m.node_id == self.rogue.node_id for m in f.node)
        )

    async def _read(self) -> None:
        try:
            while True:
                if not self._reading:
                    self._resume = trio.Event()
                    await self._resume.wait()
                data = await self.channel.receive()
                try:
                    self.received.append(decode_frame(data))
                except DecodeError as exc:
                    self.malformed.append(str(exc))
                self._arrived.set()
                self._arrived = trio.Event()
        except ChannelClosed as exc:
            self.close_reason = str(exc)
        finally:
            self.closed.set()

    async def _beat(self, interval: float) -> None:
        # Digest {}: never ahead of anyone, so nobody asks the rogue for messages.
        while not self.closed.is_set():
            try:
                await self.send(Heartbeat(self.rogue.node_id, self.term, {}))
            except ChannelClosed:
                return
            await trio.sleep(interval)


async def _first(*waits: Callable[[], Any]) -> None:
    """Return as soon as one of ``waits`` returns."""
    async with trio.open_nursery() as nursery:

        async def run(wait: Callable[[], Any]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        for wait in waits:
            nursery.start_soon(run, wait)


@asynccontextmanager
async def open_links(
    rogue: Rogue, addresses: Sequence[str], *, term: int = 0
) -> AsyncIterator[list[RogueLink]]:
    """A link from ``rogue`` to each of ``addresses`` (in order), all closed on exit.

    For frames that must reach the nodes straight from the rogue: one version of a message
    to half the nodes and another to the rest, a claim to everyone at once.
    """
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(rogue.connect(address, term=term))
            for address in addresses
        ]
