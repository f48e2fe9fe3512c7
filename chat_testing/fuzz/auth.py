"""Secrets: the director's proof header and the secret file (``chat.auth``)."""

from __future__ import annotations

import functools
import random

from chat.auth import (
    MAX_SECRETS,
    MIN_SECRET_BYTES,
    DirectorProof,
    Keyring,
    SecretError,
    parse_director_proof,
    parse_keyring,
)
from chat_testing.fuzz.common import timed
from chat_testing.fuzz.mutate import mutate_bytes

_PROOF_SAMPLES = [
    DirectorProof(0, "0" * 32, "0" * 64).header().encode(),
    DirectorProof(10**12 - 1, "f" * 32, "a" * 64).header().encode(),
    DirectorProof(1_764_590_000, "0123456789abcdef" * 2, "deadbeef" * 8).header().encode(),
]


def proof_input(rng: random.Random) -> str:
    """An ``X-Chat-Proof`` value as hypercorn hands it over (latin-1): valid, or mutated."""
    data = rng.choice(_PROOF_SAMPLES)
    for _ in range(rng.choice([0, 1, 1, 2, 3, 8])):
        data = mutate_bytes(data, rng, _PROOF_SAMPLES)
    return data.decode("latin-1")


def check_proof(value: str) -> DirectorProof | None:
    """The proof parser's invariant: None, or a proof that prints back to the same value."""
    proof = timed(parse_director_proof, value)
    if proof is None:
        return None
    assert proof.header() == value, "a parsed proof must print back to its header"
    assert 0 <= proof.timestamp < 10**12 and len(proof.nonce) == 32 and len(proof.mac) == 64
    return proof


_SECRET_LINES = [
    b"a-group-secret-of-32-bytes-xxxxx",
    b"  another-secret-0123456789abcdef  ",
    b"# a comment",
    b"",
    b"short",
    b"x" * 15,
    b"y" * 16,
    b"\t\r",
    bytes(range(256)),
]


def secret_file_input(rng: random.Random) -> bytes:
    """A secret file: lines of secrets, comments, blanks and junk, then mutated."""
    lines = [rng.choice(_SECRET_LINES) for _ in range(rng.randrange(12))]
    data = rng.choice([b"\n", b"\r\n", b"\r"]).join(lines)
    for _ in range(rng.choice([0, 0, 1, 3])):
        data = mutate_bytes(data, rng, _SECRET_LINES)
    return data


def check_secret_file(data: bytes) -> Keyring | None:
    """The secret file parser's invariant: a ``SecretError`` that says why, or a keyring of
    distinct stripped secrets, each long enough, at most ``MAX_SECRETS``."""
    try:
        keyring = timed(functools.partial(parse_keyring, source="secret file F"), data)
    except SecretError as exc:
        assert str(exc).startswith("secret file F"), "a SecretError must name its file"
        return None
    secrets = keyring.secrets
    assert 1 <= len(secrets) <= MAX_SECRETS and len(set(secrets)) == len(secrets)
    for secret in secrets:
        assert len(secret) >= MIN_SECRET_BYTES and secret == secret.strip()
        assert not secret.startswith(b"#") and secret in data
    return keyring
