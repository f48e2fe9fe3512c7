"""TLS 1.3 for peer links, from Python's ``ssl`` (OpenSSL): encryption, integrity, forward
secrecy, and both ends authenticated by certificate.

The composition (README: Security):

- Each group secret defines a **group authority**: an Ed25519 key derived from the secret
  with HKDF-SHA256, and a self-signed CA certificate for it, identical on every node.
- Each node presents a certificate for **its own Ed25519 identity key** (its node-id is
  that key's fingerprint), issued by the authority of its primary secret, and requires one
  from the other end. Both ends trust exactly the authorities of the secrets they hold, so
  only a holder of a group secret completes a TLS handshake at all, and rotating the
  secret rotates the authority with it.
- The dialer pins the node it meant to reach: the certificate's key must have that
  node-id as fingerprint (``chatd.transport``), or the link is refused. The acceptor
  checks that the ``hello`` names the certificate's key (``chatd.peers.handshake``). The
  group-secret proof inside the channel covers both keys and both nonces.

Certificates live in memory only: OpenSSL loads them from an anonymous memory file
(``memfd``), so nothing of a key touches the disk. Session tickets are off, so every
connection is verified against the authorities trusted at the time (after a rotation
too).
"""

from __future__ import annotations

import datetime
import os
import ssl
from typing import Protocol

from attrs import frozen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from chat.auth import Keyring
from chat.identity import Identity, fingerprint

# Certificates do not expire: a node's key lives as long as its process, and the group's
# as long as its secret. Fixed dates keep the authority's certificate identical everywhere
# and no node's clock can make a link fail.
NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
AUTHORITY_INFO = b"chat-group-authority-v1"


@frozen
class Authority:
    key: Ed25519PrivateKey
    certificate: x509.Certificate


def group_authority(secret: bytes) -> Authority:
    """The certificate authority a group secret defines; the same on every node.

    Built when the contexts are (at start and on reload), never cached: a secret removed
    from the file leaves no authority behind in memory."""
    seed = HKDF(hashes.SHA256(), 32, salt=None, info=AUTHORITY_INFO).derive(secret)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = key.public_key()
    # The name carries a fingerprint of the authority's key, so the authorities of two
    # secrets in one keyring never share a subject.
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"chat group {fingerprint(raw)}")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(1)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, None)
    )
    return Authority(key, certificate)


def node_certificate(ident: Identity, authority: Authority) -> x509.Certificate:
    """A certificate for ``ident``'s own key, named by its node-id, issued by ``authority``."""
    public = ident.private_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ident.node_id)]))
        .issuer_name(authority.certificate.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
        .sign(authority.key, None)
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


@frozen
class PeerTls:
    """The two TLS contexts of a node: for connections it accepts and ones it dials."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def peer_tls(ident: Identity, keyring: Keyring) -> PeerTls:
    """Contexts presenting ``ident``'s certificate from the primary secret's authority and
    trusting the authorities of every secret in ``keyring``."""
    certificate = node_certificate(ident, group_authority(keyring.primary))
    key = ident.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = _pem(certificate) + key
    trusted = "".join(
        _pem(group_authority(secret).certificate).decode() for secret in keyring.secrets
    )
    return PeerTls(
        _context(ssl.PROTOCOL_TLS_SERVER, chain, trusted),
        _context(ssl.PROTOCOL_TLS_CLIENT, chain, trusted),
    )


def _context(protocol: int, chain: bytes, trusted: str) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # Peers are named by key, not by host name: the dialer pins the key instead.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.options |= ssl.OP_NO_TICKET
    if protocol == ssl.PROTOCOL_TLS_SERVER:
        context.num_tickets = 0  # TLS 1.3: OP_NO_TICKET alone still sends stateful ones
    load_chain(context, chain)
    context.load_verify_locations(cadata=trusted)
    return context


def load_chain(context: ssl.SSLContext, chain: bytes) -> None:
    """Load a PEM certificate chain and key (``chain``) into ``context`` from memory."""
    # OpenSSL reads a certificate and key only from a path: give it an anonymous memory
    # file, gone when closed, so the node's private key never reaches a disk.
    fd = os.memfd_create("chat-tls", os.MFD_CLOEXEC)
    try:
        os.write(fd, chain)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def certificate_key(der: bytes | None) -> bytes | None:
    """The raw Ed25519 key of a DER certificate; None if there is none or it is another kind."""
    if der is None:
        return None
    try:
        public = x509.load_der_x509_certificate(der).public_key()
    except ValueError:
        return None
    if not isinstance(public, Ed25519PublicKey):
        return None
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def certificate_node_id(der: bytes | None) -> str | None:
    """The node-id a peer's certificate speaks for (its key's fingerprint), if any."""
    key = certificate_key(der)
    return None if key is None else fingerprint(key)


class Session(Protocol):
    """What ``describe`` needs of a TLS session (an ``SSLObject`` or a ``trio.SSLStream``)."""

    def cipher(self) -> tuple[str, str, int] | None: ...

    def version(self) -> str | None: ...


def describe(session: Session) -> str:
    """``TLSv1.3 TLS_AES_256_GCM_SHA384``: the protocol and cipher of a session."""
    cipher = session.cipher()
    return f"{session.version()} {cipher[0]}" if cipher else "TLS"
