"""The group secret and the proofs made with it (pure; no I/O beyond reading the file).

A peer proves it knows the secret with HMAC-SHA256 over both node ids and both
connection nonces, so a proof cannot be replayed on another connection or reflected back.
Director requests carry an HMAC of their body in the ``X-Chat-Proof`` header.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

PROOF_HEADER = "X-Chat-Proof"
MIN_SECRET_BYTES = 16


class SecretError(ValueError):
    """The secret file cannot be used; the message says why."""


def load_secret(path: str | Path) -> bytes:
    """Read a group secret: the file's content, surrounding whitespace stripped."""
    try:
        data = Path(path).read_bytes().strip()
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
    if len(data) < MIN_SECRET_BYTES:
        raise SecretError(
            f"secret file {path} holds {len(data)} bytes; at least {MIN_SECRET_BYTES} are needed"
        )
    return data


def handshake_material(sender: str, receiver: str, sender_nonce: str, receiver_nonce: str) -> bytes:
    """What ``sender`` proves and signs in its ``auth`` frame to ``receiver``.

    Direction and both nonces are included, so an ``auth`` frame is good for one
    connection and one direction only.
    """
    return "\0".join(("chat-peer-v1", sender, receiver, sender_nonce, receiver_nonce)).encode()


def peer_proof(secret: bytes, material: bytes) -> str:
    return hmac.new(secret, material, hashlib.sha256).hexdigest()


def director_proof(secret: bytes, body: bytes) -> str:
    """The ``X-Chat-Proof`` header value for a director request body."""
    return hmac.new(secret, b"chat-director-v1\0" + body, hashlib.sha256).hexdigest()


def proofs_match(expected: str, given: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(expected.encode(), given.encode())
