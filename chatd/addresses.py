"""Checking the address a node advertises: the one its peers will dial.

Whatever ``--advertise`` says is what the director hands out and every peer dials, so a
mistake there does not fail at start: it shows up later, elsewhere, as peers that cannot
link. It is checked at start instead, and refused with one line saying what is wrong.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from chat.wire.bounds import MAX_ADDRESS_CHARS

# A DNS name: dot-separated labels of letters, digits and inner hyphens (RFC 1123).
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
WILDCARDS = ("0.0.0.0", "::")


def advertise_problem(address: str, scheme: str) -> str | None:
    """Why peers could not dial ``address`` (``scheme://HOST:PORT``), or None if they can.

    Refused: another scheme, no host, a wildcard or otherwise undialable IP address
    (unspecified, multicast, broadcast), a host name with characters DNS does not allow, no
    port or one out of range, a path, query, fragment or user name. Loopback is accepted: a
    discussion may live on one machine.
    """
    if len(address) > MAX_ADDRESS_CHARS:
        return f"longer than {MAX_ADDRESS_CHARS} characters"
    if not address.startswith(f"{scheme}://"):
        return f"it must start with {scheme}://"
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as exc:
        return f"not a {scheme}://HOST:PORT address ({exc})"
    if parts.username is not None or parts.password is not None:
        return "no user name or password belongs in it"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "no path, query or fragment: only HOST:PORT"
    host = parts.hostname
    if not host:
        return "no host"
    if port is None:
        return "no port"
    if not 0 < port < 65536:
        return f"port {port} out of range"
    return _host_problem(host)


def _host_problem(host: str) -> str | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if ":" in host or host.replace(".", "").isdigit():
            return f"{host} is not a valid IP address"
        labels = host.removesuffix(".").split(".")
        if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            return f"{host} is not a valid host name (letters, digits, '-' and '.')"
        return None
    if ip.is_unspecified:
        return f"{host} is a wildcard: it means every address of this host, peers cannot dial it"
    if ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        return f"{host} is not the address of one host"
    return None


def is_wildcard(host: str) -> bool:
    """Whether listening on ``host`` means every address of this host."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return host == ""
