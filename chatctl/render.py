"""Human and JSON Lines renderings of what chatd answers.

Everything shown to a person that came from the network (text, names, addresses, error
messages) goes through ``visible`` first: a hostile peer must not be able to move the cursor,
retitle the terminal or fake extra lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from chatd.wire import MemberView, MessageView, Status, encode

SHORT_ID = 12

# C0 and C1 controls except tab, DEL, line/paragraph separators and the bidi overrides and
# isolates (which can make text read differently from what it is).
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def visible(text: str) -> str:
    """``text`` with every unsafe character replaced by its escape, e.g. ESC -> ``\\x1b``."""
    return _UNSAFE.sub(lambda m: _escape(m.group()), text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def short(node_id: str) -> str:
    return visible(node_id[:SHORT_ID])


def json_line(obj: Any) -> str:
    """One JSON object, wire field names, no newline inside (orjson escapes controls)."""
    return encode(obj).decode()


def clock(timestamp: str) -> str:
    """``HH:MM:SS`` in local time for an ISO 8601 timestamp (naive means UTC)."""
    try:
        when = datetime.fromisoformat(timestamp)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone().strftime("%H:%M:%S")
    except (ValueError, OverflowError):  # garbage, or year 1 west of Greenwich
        return visible(timestamp)  # still show something rather than hide the message


def message_line(message: MessageView) -> str:
    """``HH:MM:SS name: text``."""
    return f"{clock(message.timestamp)} {visible(message.name)}: {visible(message.message)}"


def status_lines(status: Status) -> list[str]:
    """Aligned ``key: value`` lines; lists continue on indented lines."""
    clock_items = sorted(status.vector_clock.items())
    rows: list[tuple[str, list[str]]] = [
        ("node-id", [visible(status.node_id)]),
        ("name", [visible(status.name)]),
        ("role", [status.role]),
        ("coordinator", [visible(status.coordinator or "none")]),
        ("term", [str(status.term)]),
        ("address", [visible(status.address)]),
        ("public-address", [visible(status.public_address)]),
        ("neighbours", [" ".join(short(n) for n in status.neighbours) or "none"]),
        ("members", [str(len(status.members))]),
        ("messages", [str(status.messages)]),
        ("vector-clock", [" ".join(f"{short(n)}={c}" for n, c in clock_items) or "none"]),
        (
            "peers",
            [
                f"{short(p.node_id)} {visible(p.name)} (heard {p.last_heard:.1f} s ago,"
                f" {visible(p.cipher) if p.cipher else 'NOT ENCRYPTED'})"
                for p in status.peers
            ]
            or ["none"],
        ),
    ]
    if status.director:
        rows.append(("director", [visible(status.director)]))
    rows.append(("secure", [secure_line(status)]))
    if status.irc is not None:
        irc = status.irc
        rows.append(("irc", [f"{visible(irc.address)} password {visible(irc.password)}"]))
    width = max(len(key) for key, _ in rows) + 2
    lines: list[str] = []
    for key, values in rows:
        lines.append(f"{key + ':':<{width}}{values[0]}")
        lines.extend(" " * width + value for value in values[1:])
    return lines


def secure_line(status: Status) -> str:
    if status.secure:
        return "yes (group secret; every link TLS 1.3)"
    plain = [p for p in status.peers if not p.encrypted]
    if plain and any(p.encrypted for p in status.peers):
        return f"no: {len(plain)} link(s) not encrypted"
    return "no (no group secret: --insecure)"


def who_lines(members: Iterable[MemberView]) -> list[str]:
    """A table of members; ``*`` marks the coordinator, ``(you)`` the local node; the link
    from this node to each, with how long ago it was last heard; the address peers dial
    (the advertised one, not the listen address)."""
    rows = [("", "NODE-ID", "NAME", "LINK", "ADDRESS")]
    for m in members:
        mark = "*" if m.role == "coordinator" else ""
        name = visible(m.name) + (" (you)" if m.link == "self" else "")
        link: str = "-" if m.link == "self" else m.link
        if m.link == "up" and m.last_heard is not None:
            link = f"up {m.last_heard:.1f}s"
        rows.append((mark, short(m.node_id), name, link, visible(m.public_address)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return [
        f"{mark:<{widths[0]}} {node:<{widths[1]}}  {name:<{widths[2]}}  {link:<{widths[3]}}  "
        f"{address}".rstrip()
        for mark, node, name, link, address in rows
    ]
