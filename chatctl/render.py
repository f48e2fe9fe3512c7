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

from chat.wire import MemberView, MessageView, PresenceView, Status, encode

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


# An action (``/me waves``) is an ordinary message whose text starts with this.
ACTION = "/me "


def message_line(message: MessageView) -> str:
    """``HH:MM:SS name: text``, or ``HH:MM:SS * name waves`` for a ``/me`` action; the
    name is the display name (``name#xxxx`` when several members share it)."""
    name = visible(message.display or message.name)
    if message.message.startswith(ACTION) and message.message[len(ACTION) :].strip():
        return f"{clock(message.timestamp)} * {name} {visible(message.message[len(ACTION) :])}"
    return f"{clock(message.timestamp)} {name}: {visible(message.message)}"


def presence_line(event: PresenceView) -> str:
    """``HH:MM:SS -- alice joined`` and the like, for a presence event."""
    return f"{clock(event.at)} -- {presence_text(event)}"


def presence_text(event: PresenceView) -> str:
    """``alice joined`` and the like: what a presence event says, with display names."""
    name = visible(event.display or event.name)
    match event.event:
        case "joined" | "left" | "rejoined":
            what = f"{name} {event.event}"
        case "timed-out":
            what = f"{name} left (timed out)"
        case "coordinator":
            what = f"{name} is now coordinator"
        case "renamed":
            what = f"{visible(event.old_name or '?')} is now known as {name}"
        case _:  # a newer chatd's event: still shown
            what = f"{name} {visible(event.event)}"
    return what


def idle(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    return f"{seconds // 3600:.0f}h"


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
    seen = f"; the director saw it come from {visible(status.observed_address)}"
    dialable = "yes" if status.reachable else "no: dial-out only"
    rows.append(("reachable", [dialable + (seen if status.observed_address else "")]))
    if status.warning:
        rows.append(("warning", [visible(status.warning)]))
    if status.irc is not None:
        irc = status.irc
        rows.append(("irc", [f"{visible(irc.address)} password {visible(irc.password)}"]))
    width = max(len(key) for key, _ in rows) + 2
    lines: list[str] = []
    for key, values in rows:
        lines.append(f"{key + ':':<{width}}{values[0]}")
        lines.extend(" " * width + value for value in values[1:])
    return lines


def check_line(status: Status) -> str:
    """``status --check``'s one line: the role, the members, the coordinator and the
    director as the node last found it ("ok", or its last error)."""
    coordinator = short(status.coordinator) if status.coordinator else "none"
    line = f"{status.role}, {len(status.members)} members, coordinator {coordinator}"
    return line + (f", director: {visible(status.director)}" if status.director else "")


def secure_line(status: Status) -> str:
    if status.secure:
        return "yes (group secret; every link TLS 1.3)"
    plain = [p for p in status.peers if not p.encrypted]
    if plain and any(p.encrypted for p in status.peers):
        return f"no: {len(plain)} link(s) not encrypted"
    return "no (no group secret: --insecure)"


def who_lines(members: Iterable[MemberView]) -> list[str]:
    """A table of members: display name (``(you)`` marks the local node), role, the link
    from this node to each (up, down, or self), idle time (since its last message this
    node delivered), whether peers can dial it (``no``: behind NAT, it dials out only),
    node-id, and the address peers dial (the advertised one)."""
    rows = [("NAME", "ROLE", "LINK", "IDLE", "DIALABLE", "NODE-ID", "ADDRESS")]
    for m in members:
        name = visible(m.display or m.name) + (" (you)" if m.link == "self" else "")
        dialable = "yes" if m.reachable else "no"
        rows.append(
            (
                name,
                m.role,
                m.link,
                idle(m.idle),
                dialable,
                short(m.node_id),
                visible(m.public_address),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)] + [0]
    return [
        "  ".join(f"{c:<{w}}" for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
