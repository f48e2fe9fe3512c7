"""Why a peer connection failed, in words an operator can act on (never empty).

The errors come wrapped: trio-websocket wraps a socket error in a ``HandshakeError``
without a message, trio wraps the per-address errors of a connect in a group and an SSL
error in a ``BrokenResourceError``; the innermost errno or SSL reason says it best.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl

import trio
from trio_websocket import ConnectionRejected, ConnectionTimeout, HandshakeError

from chatd.channel import (
    CLOSED,
    NO_ROUTE,
    NOT_RESOLVED,
    OTHER,
    REFUSED,
    TIMED_OUT,
    TLS_FAILED,
    UPGRADE_REFUSED,
)

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


def dial_failure_reason(exc: BaseException, *, tls: bool = False) -> str:
    """Which of ``chatd.channel.REASONS`` a dial failure is, from the error's type and
    errno (the words of ``dial_failure`` say the same at length)."""
    if isinstance(exc, ConnectionRejected):
        return UPGRADE_REFUSED
    if isinstance(exc, ConnectionTimeout | trio.TooSlowError):
        return TIMED_OUT
    if tls and ssl_error(exc) is not None:
        return TLS_FAILED
    if isinstance(exc, HandshakeError) and exc.__cause__ is not None:
        return dial_failure_reason(exc.__cause__, tls=tls)
    if isinstance(exc, OSError):
        found = {_errno_reason(leaf) for leaf in os_errors(exc)}
        # Of the addresses a name resolves to, the most telling answer: a host that
        # refused was reached, one that never answered may be behind a firewall.
        for reason in (REFUSED, TIMED_OUT, NO_ROUTE, NOT_RESOLVED, CLOSED):
            if reason in found:
                return reason
    if isinstance(exc, trio.BrokenResourceError | HandshakeError):
        return TLS_FAILED if tls else CLOSED
    return OTHER


_ERRNO_REASONS = {
    errno.ECONNREFUSED: REFUSED,
    errno.ETIMEDOUT: TIMED_OUT,
    errno.EHOSTUNREACH: NO_ROUTE,
    errno.ENETUNREACH: NO_ROUTE,
    errno.EHOSTDOWN: NO_ROUTE,
    errno.ENETDOWN: NO_ROUTE,
    errno.ECONNRESET: CLOSED,
    errno.ECONNABORTED: CLOSED,
    errno.EPIPE: CLOSED,
}


def _errno_reason(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):  # its errno is a resolver code, not an errno
        return NOT_RESOLVED
    if isinstance(exc, TimeoutError):
        return TIMED_OUT
    return _ERRNO_REASONS.get(exc.errno or 0, OTHER)


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
