"""Why a peer connection failed, in words an operator can act on (never empty).

The errors come wrapped: trio-websocket wraps a socket error in a ``HandshakeError``
without a message, trio wraps the per-address errors of a connect in a group and an SSL
error in a ``BrokenResourceError``; the innermost errno or SSL reason says it best.
"""

from __future__ import annotations

import os
import socket
import ssl

import trio
from trio_websocket import ConnectionRejected, ConnectionTimeout, HandshakeError

_CLOSED_IN_HANDSHAKE = (
    "the peer closed the connection during the TLS handshake (it may not trust this node's"
    " certificate: another group's secret, or one it no longer holds)"
)


def tls_failure(exc: BaseException) -> str:
    """Why a TLS handshake failed, in words an operator can act on."""
    error = ssl_error(exc)
    if error is None:
        return _CLOSED_IN_HANDSHAKE
    reason = (error.reason or "").upper()
    if reason == "CERTIFICATE_VERIFY_FAILED":
        return (
            "the peer's certificate is not from this group's secret (another group, a"
            " removed secret, or a man in the middle)"
        )
    if reason in ("TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE"):
        return (
            "the peer refused this node's certificate: it does not hold this node's first"
            " secret (another group, or a rotation step it missed)"
        )
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
        return "the peer does not speak TLS (it runs --insecure)"
    if isinstance(error, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
        return _CLOSED_IN_HANDSHAKE
    return (error.reason or str(error)).lower().replace("_", " ")


def ssl_error(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def dial_failure(exc: BaseException, *, tls: bool = False) -> str:
    """Why a dial failed, never empty: "connection refused", "timed out", "HTTP 404", ...

    trio-websocket wraps the socket error in a ``HandshakeError`` without a message, and
    trio wraps the per-address errors of a connect in a group; the errno says it best.
    ``tls``: the dial spoke TLS, so a closed connection or an SSL error is explained.
    """
    if isinstance(exc, ConnectionRejected):
        if exc.status_code == 426:
            return (
                "HTTP 426: the peer speaks only TLS (it has a group secret), this node runs"
                " --insecure"
            )
        return f"websocket upgrade refused: HTTP {exc.status_code}"
    if isinstance(exc, ConnectionTimeout | trio.TooSlowError):
        return "timed out"
    if tls and ssl_error(exc) is not None:
        return tls_failure(exc)
    if isinstance(exc, HandshakeError) and exc.__cause__ is not None:
        return dial_failure(exc.__cause__, tls=tls)
    if isinstance(exc, OSError):
        leaves = os_errors(exc)
        reasons = list(dict.fromkeys(r for r in map(strerror, leaves) if r))
        if reasons:
            return "; ".join(reasons)
    if tls and isinstance(exc, trio.BrokenResourceError | HandshakeError):
        return (
            "the connection closed during the TLS handshake (the peer runs --insecure, or"
            " does not hold this node's first secret)"
        )
    return str(exc) or type(exc).__name__


def os_errors(exc: BaseException) -> list[OSError]:
    """The OSErrors behind ``exc``: itself, or the members of the group it was raised from."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for member in exc.exceptions for leaf in os_errors(member)]
    if isinstance(exc, OSError) and exc.errno is None and exc.__cause__ is not None:
        return os_errors(exc.__cause__) or [exc]
    return [exc] if isinstance(exc, OSError) else []


def strerror(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):  # its errno is a resolver code, not an errno
        return str(exc.strerror or "").lower()
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc)
