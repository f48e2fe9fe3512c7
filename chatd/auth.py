"""The group secrets and the proofs made with them (pure; no I/O beyond reading the file).

A secret file holds one or more secrets, one per line (a keyring, as Serf's): the first is
the one this process proves with, and every one is accepted from others. That is what lets
a group rotate its secret without stopping (README: Rotating the group secret).

A peer proves it knows a secret with HMAC-SHA256 over both node ids, both public keys and
both connection nonces, so a proof cannot be replayed on another connection, reflected
back, or passed on by a man in the middle whose TLS key differs from the node's.
Director requests carry an HMAC of their body in the ``X-Chat-Proof`` header.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

from attrs import field, frozen

PROOF_HEADER = "X-Chat-Proof"
MIN_SECRET_BYTES = 16
# A keyring is for rotation: two or three secrets at a time. The bound keeps a proof check
# (one HMAC per secret) cheap whatever the file says.
MAX_SECRETS = 8


class SecretError(ValueError):
    """The secret file cannot be used; the message says why."""


def _nonempty(instance: object, attribute: object, value: tuple[bytes, ...]) -> None:
    if not value:
        raise ValueError("a keyring holds at least one secret")


@frozen
class Keyring:
    """The group secrets this process knows: ``primary`` proves, all are accepted."""

    secrets: tuple[bytes, ...] = field(validator=_nonempty)

    @classmethod
    def of(cls, *secrets: bytes) -> Keyring:
        return cls(tuple(secrets))

    @property
    def primary(self) -> bytes:
        return self.secrets[0]

    def accepts(self, proof: Callable[[bytes], str], given: str) -> bool:
        """Whether ``given`` is ``proof(secret)`` for one of the secrets (constant time
        for each, and every secret is tried, so timing does not tell which matched)."""
        matched = False
        for secret in self.secrets:
            matched |= proofs_match(proof(secret), given)
        return matched


def load_keyring(path: str | Path) -> Keyring:
    """Read a secret file: one secret per line, blank lines and ``#`` comments ignored,
    surrounding whitespace stripped; the first secret proves, all are accepted."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
    secrets: list[bytes] = []
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        if len(line) < MIN_SECRET_BYTES:
            raise SecretError(
                f"secret file {path}, line {number}: {len(line)} bytes;"
                f" a secret needs at least {MIN_SECRET_BYTES}"
            )
        if line not in secrets:
            secrets.append(line)
    if not secrets:
        raise SecretError(f"secret file {path} holds no secret")
    if len(secrets) > MAX_SECRETS:
        raise SecretError(
            f"secret file {path} holds {len(secrets)} secrets; at most {MAX_SECRETS} (rotate"
            " by adding one, making it first, then removing the old one)"
        )
    return Keyring(tuple(secrets))


def handshake_material(
    sender: str,
    receiver: str,
    sender_key: str,
    receiver_key: str,
    sender_nonce: str,
    receiver_nonce: str,
) -> bytes:
    """What ``sender`` proves and signs in its ``auth`` frame to ``receiver``.

    Direction, both public keys (the ones the TLS certificates carry) and both nonces
    are included, so an ``auth`` frame is good for one connection and one direction only,
    and only between the two keys that hold the TLS session.
    """
    return "\0".join(
        (
            "chat-peer-v2",
            sender,
            receiver,
            sender_key,
            receiver_key,
            sender_nonce,
            receiver_nonce,
        )
    ).encode()


def peer_proof(secret: bytes, material: bytes) -> str:
    return hmac.new(secret, material, hashlib.sha256).hexdigest()


def director_proof(secret: bytes, body: bytes) -> str:
    """The ``X-Chat-Proof`` header value for a director request body."""
    return hmac.new(secret, b"chat-director-v1\0" + body, hashlib.sha256).hexdigest()


def proofs_match(expected: str, given: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(expected.encode(), given.encode())
