"""The group secrets and the proofs made with them (pure; no I/O beyond reading the file).

A secret file holds one or more secrets, one per line (a keyring, as Serf's): the first is
the one this process proves with, and every one is accepted from others. That is what lets
a group rotate its secret without stopping (README: Rotating the group secret).

A peer proves it knows a secret with HMAC-SHA256 over both node ids, both public keys and
both connection nonces, so a proof cannot be replayed on another connection, reflected
back, or passed on by a man in the middle whose TLS key differs from the node's.
A signed director request carries ``X-Chat-Proof: v2 t=<unix seconds> n=<32 hex>
mac=<64 hex>``: an HMAC over the method, the endpoint's path, the timestamp, a random nonce
and the body, so a captured request is good for that endpoint only, within a short window
of its timestamp, and once (the director remembers the nonces it has seen).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable
from pathlib import Path

from attrs import field, frozen

from chat.files import TooLarge, read_bounded

PROOF_HEADER = "X-Chat-Proof"
MIN_SECRET_BYTES = 16
# A keyring is for rotation: two or three secrets at a time. The bound keeps a proof check
# (one HMAC per secret) cheap whatever the file says.
MAX_SECRETS = 8
# Eight secrets of a few hundred bytes, with comments, fit many times over.
MAX_SECRET_FILE_BYTES = 64 * 1024


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
    """Read a secret file (see ``parse_keyring``), at most ``MAX_SECRET_FILE_BYTES`` of it:
    a path to a device or a huge file is an error, not a hang."""
    try:
        data = read_bounded(path, MAX_SECRET_FILE_BYTES)
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
    except TooLarge:
        raise SecretError(
            f"secret file {path} is over {MAX_SECRET_FILE_BYTES} bytes: is it the right file?"
        ) from None
    return parse_keyring(data, f"secret file {path}")


def parse_keyring(data: bytes, source: str) -> Keyring:
    """One secret per line, blank lines and ``#`` comments ignored, surrounding whitespace
    stripped, repeats dropped; the first secret proves, all are accepted. ``SecretError``
    names ``source`` and the line."""
    secrets: list[bytes] = []
    for number, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(b"#"):
            continue
        if len(line) < MIN_SECRET_BYTES:
            raise SecretError(
                f"{source}, line {number}: {len(line)} bytes;"
                f" a secret needs at least {MIN_SECRET_BYTES}"
            )
        if line not in secrets:
            secrets.append(line)
    if not secrets:
        raise SecretError(f"{source} holds no secret")
    if len(secrets) > MAX_SECRETS:
        raise SecretError(
            f"{source} holds {len(secrets)} secrets; at most {MAX_SECRETS} (rotate"
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


# Strict: one spelling per proof (lowercase hex, no spaces to spare), digits bounded.
_DIRECTOR_PROOF = re.compile(
    r"v2 t=(?P<t>0|[1-9][0-9]{0,11}) n=(?P<n>[0-9a-f]{32}) mac=(?P<mac>[0-9a-f]{64})"
)


@frozen
class DirectorProof:
    """A parsed ``X-Chat-Proof`` header: the timestamp (unix seconds), nonce and MAC."""

    timestamp: int
    nonce: str
    mac: str

    def header(self) -> str:
        return f"v2 t={self.timestamp} n={self.nonce} mac={self.mac}"

    def expected(self, secret: bytes, method: str, path: str, body: bytes) -> str:
        """The MAC ``secret`` gives this timestamp and nonce on that request."""
        return director_mac(secret, method, path, self.timestamp, self.nonce, body)


def director_mac(
    secret: bytes, method: str, path: str, timestamp: int, nonce: str, body: bytes
) -> str:
    """HMAC-SHA256 of ``chat-director-v2 \\0 METHOD \\0 PATH \\0 t \\0 n \\0 body``.

    ``path`` is the endpoint's (``/register_node``), as the director routes it.
    """
    head = "\0".join(("chat-director-v2", method.upper(), path, str(timestamp), nonce, ""))
    return hmac.new(secret, head.encode() + body, hashlib.sha256).hexdigest()


def sign_director_request(
    secret: bytes, method: str, path: str, body: bytes, now: float, nonce: str | None = None
) -> str:
    """The ``X-Chat-Proof`` header value for one request, dated ``now`` (unix seconds), with
    a fresh random nonce unless one is given (tests)."""
    nonce = os.urandom(16).hex() if nonce is None else nonce
    timestamp = int(now)
    return DirectorProof(
        timestamp, nonce, director_mac(secret, method, path, timestamp, nonce, body)
    ).header()


def parse_director_proof(value: str) -> DirectorProof | None:
    """The proof in a header value, or None when it is not a well-formed v2 proof."""
    match = _DIRECTOR_PROOF.fullmatch(value)
    if match is None:
        return None
    return DirectorProof(int(match["t"]), match["n"], match["mac"])


def proofs_match(expected: str, given: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(expected.encode(), given.encode())
