"""A node's Ed25519 identity, and signing and checking of chat messages (pure).

The node-id is the fingerprint of the node's public key, so an id cannot be claimed
without the key: any node can check any message it relays or receives in a state
transfer, whoever handed it over.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

import orjson
from attrs import frozen
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import SigningKey, VerifyKey

from chat.wire import Message, UpdateCoordinator

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def fingerprint(public_key: bytes) -> str:
    """The node-id for a raw 32-byte public key: 128 bits of its SHA-256, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:32]


def message_bytes(
    id: str, node_id: str, name: str, timestamp: str, text: str, clock: Mapping[str, int]
) -> bytes:
    return orjson.dumps(
        ["chat-message-v1", id, node_id, name, timestamp, text, dict(clock)],
        option=orjson.OPT_SORT_KEYS,
    )


@frozen
class Identity:
    """Signs with libsodium (PyNaCl): 26-33 µs a signature against 42-47 with
    ``cryptography`` (facts.md), which only TLS needs (``private_key``)."""

    signing_key: SigningKey
    public_key: str  # base64 of the raw key, as sent on the wire
    node_id: str

    @classmethod
    def generate(cls, seed: bytes | None = None) -> Identity:
        """A fresh identity; ``seed`` (32 bytes) makes it reproducible for tests."""
        if seed is not None and len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        key = SigningKey(seed) if seed is not None else SigningKey.generate()
        raw = bytes(key.verify_key)
        return cls(key, base64.b64encode(raw).decode(), fingerprint(raw))

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The same key for ``cryptography`` (TLS certificates). Imported here: a node
        without TLS never loads ``cryptography`` (~8 MB of memory)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.from_private_bytes(bytes(self.signing_key))

    def sign_bytes(self, data: bytes) -> str:
        return base64.b64encode(self.signing_key.sign(data).signature).decode()

    def sign(
        self,
        name: str,
        timestamp: str,
        text: str,
        clock: Mapping[str, int],
        *,
        id: str | None = None,
    ) -> Message:
        """A signed message; its id is derived from its origin and sequence number.

        ``id`` overrides that, for tests of what a node does with a bad one.
        """
        if id is None:
            id = message_id(self.node_id, clock.get(self.node_id, 0))
        payload = message_bytes(id, self.node_id, name, timestamp, text, clock)
        signature = self.sign_bytes(payload)
        return Message(
            id=id,
            node_id=self.node_id,
            name=name,
            timestamp=timestamp,
            message=text,
            vector_clock=dict(clock),
            public_key=self.public_key,
            signature=signature,
        )


# Message ids are UUIDs derived from (origin, sequence number): an id names one message of
# one origin, so no node can make a message that shadows another origin's id.
_MESSAGE_ID_NAMESPACE = uuid.UUID("1d7e5b38-3c8a-4f3e-9a55-6d0f7c2b9e41")


_NAMESPACE_BYTES = _MESSAGE_ID_NAMESPACE.bytes


def message_id(node_id: str, seq: int) -> str:
    """``str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, f"{node_id}/{seq}"))``, computed as RFC 4122
    does it (SHA-1, version and variant bits, hex groups) without building ``UUID``
    objects: every receiver checks the id of every message."""
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{node_id}/{seq}".encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def key_matches_id(public_key: str, node_id: str) -> bool:
    """Whether ``public_key`` (base64) is the key whose fingerprint is ``node_id``."""
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 32 and fingerprint(raw) == node_id


def key_is(public_key: str, raw: bytes) -> bool:
    """Whether ``public_key`` (base64, as in a hello) is the raw key ``raw``."""
    try:
        return base64.b64decode(public_key, validate=True) == raw
    except (binascii.Error, ValueError):
        return False


def verify_bytes(public_key: str, data: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``public_key``'s (base64) signature of ``data``.

    Checked by libsodium (PyNaCl): 58-77 µs against 123-141 µs with ``cryptography``
    (facts.md), and every message is checked by every receiver."""
    try:
        _verify_key(public_key).verify(data, base64.b64decode(signature, validate=True))
    except (BadSignatureError, binascii.Error, ValueError, TypeError, CryptoError):
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _verify_key(public_key: str) -> VerifyKey:
    """One parsed key per member, not one per message; raises ValueError for a bad key."""
    return VerifyKey(base64.b64decode(public_key, validate=True))


def verify(message: Message) -> bool:
    """Whether ``message`` was signed by the owner of its ``node-id``."""
    return key_matches_id(message.public_key, message.node_id) and verify_bytes(
        message.public_key,
        message_bytes(
            message.id,
            message.node_id,
            message.name,
            message.timestamp,
            message.message,
            message.vector_clock,
        ),
        message.signature,
    )


def claim_bytes(coordinator: str, term: int, address: str, signer: str) -> bytes:
    return orjson.dumps(["chat-claim-v1", coordinator, term, address, signer])


def sign_claim(ident: Identity, coordinator: str, term: int, address: str) -> UpdateCoordinator:
    """A coordinator claim signed by ``ident``: the coordinator itself, or the coordinator
    handing its role over."""
    signature = ident.sign_bytes(claim_bytes(coordinator, term, address, ident.node_id))
    return UpdateCoordinator(
        coordinator=coordinator,
        term=term,
        address=address,
        signer=ident.node_id,
        public_key=ident.public_key,
        signature=signature,
    )


def verify_claim(claim: UpdateCoordinator) -> bool:
    """Whether ``claim`` carries a valid signature of the node named ``signer``."""
    return key_matches_id(claim.public_key, claim.signer) and verify_bytes(
        claim.public_key,
        claim_bytes(claim.coordinator, claim.term, claim.address, claim.signer),
        claim.signature,
    )
