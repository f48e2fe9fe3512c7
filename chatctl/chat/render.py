"""How the chat window looks: entries as styled lines wrapped to the terminal's width,
name colours, the title bar. Pure: no I/O.

Fragments are prompt_toolkit's ``(style, text)`` pairs. Every text that came from the
network goes through ``chatctl.render.visible`` (no control characters reach the terminal).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from prompt_toolkit.utils import get_cwidth

from chatctl.chat.commands import ACTION_PREFIX
from chatctl.chat.transcript import Entry, Pending, Said, Tone
from chatctl.render import visible

Fragment = tuple[str, str]
Line = list[Fragment]

# The 16-colour ANSI set minus black, white and greys: readable on dark and light themes,
# and the terminal's own palette decides the exact shades.
PALETTE = (
    "ansired",
    "ansigreen",
    "ansiyellow",
    "ansiblue",
    "ansimagenta",
    "ansicyan",
    "ansibrightred",
    "ansibrightgreen",
    "ansibrightyellow",
    "ansibrightblue",
    "ansibrightmagenta",
    "ansibrightcyan",
)

_SPACES = re.compile(r"( +)")


def colour_of(node_id: str) -> str:
    """A member's colour: from a hash of its node-id, so the same in every run and client
    (Python's ``hash`` is salted per process; sha256 is not)."""
    digest = hashlib.sha256(node_id.encode("utf-8", "surrogatepass")).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]


def hhmm(timestamp: str) -> str:
    """``HH:MM`` in local time for an ISO 8601 timestamp (naive means UTC); ``--:--`` if
    it is not one."""
    try:
        when = datetime.fromisoformat(timestamp)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone().strftime("%H:%M")
    except (ValueError, OverflowError):
        return "--:--"


def clean(text: str) -> str:
    """Network text made safe to show: controls escaped, tabs as spaces."""
    return visible(text).replace("\t", "    ")


def is_action(text: str) -> bool:
    """``/me waves``: shown as ``* name waves`` (a bare ``/me `` is an ordinary text)."""
    return text.startswith(ACTION_PREFIX) and bool(text[len(ACTION_PREFIX) :].strip())


def entry_fragments(entry: Entry | Pending, own_name: str = "") -> tuple[Line, Line]:
    """``(prefix, body)`` of one entry: continuation lines are indented under the body."""
    if isinstance(entry, Said):
        stamp = ("class:time", hhmm(entry.at) + " ")
        name_style = f"fg:{colour_of(entry.node_id)} bold"
        name = clean(entry.name)
        if is_action(entry.text):
            action = clean(entry.text[len(ACTION_PREFIX) :])
            return [stamp, ("class:action", "* "), (name_style, name), ("", " ")], [
                ("class:action", action)
            ]
        return [stamp, (name_style, name), ("", ": ")], [("", clean(entry.text))]
    if isinstance(entry, Pending):
        shown = clean(entry.text)
        if is_action(shown):
            shown = "* " + clean(own_name) + " " + shown[len(ACTION_PREFIX) :]
        return [("class:pending", f"({entry.state}) ")], [("class:pending", shown)]
    stamp_text = hhmm(entry.at) + " " if entry.at is not None else ""
    if entry.tone is Tone.INFO:
        return [("class:info", stamp_text)], [("class:info", entry.text)]
    style = "class:error" if entry.tone is Tone.ERROR else "class:notice"
    return [("class:time", stamp_text), (style, "-- ")], [(style, entry.text)]


def width_of(line: Sequence[Fragment]) -> int:
    return sum(get_cwidth(text) for _, text in line)


def wrap(prefix: Line, body: Line, width: int) -> list[Line]:
    """``prefix + body`` cut into lines of at most ``width`` columns, at spaces where
    possible (a word longer than a line is cut anywhere). Continuation lines are indented
    by the prefix's width when it takes at most half the line, else by 2 (0 when very
    narrow). A single character wider than ``width`` still gets a line of its own."""
    width = max(1, width)
    prefix_width = width_of(prefix)
    if prefix_width > width:  # very narrow: the prefix wraps like the text
        prefix, body, prefix_width = [], [*prefix, *body], 0
    indent = prefix_width if prefix_width <= width // 2 else (2 if width > 8 else 0)
    lines: list[Line] = []
    line: Line = list(prefix)
    col = prefix_width
    start = 0  # the column where this line's own text starts (after an indent)

    def newline() -> None:
        nonlocal line, col, start
        while line and line[-1][1].isspace():  # no trailing spaces before a break
            line.pop()
        lines.append(line)
        line = [("", " " * indent)] if indent else []
        col = start = indent

    for style, text in body:
        for token in _SPACES.split(text):
            if not token:
                continue
            size = get_cwidth(token)
            if token.startswith(" "):
                if col == start and lines:
                    continue  # no leading spaces on a continuation line
                if col + size > width:
                    newline()
                    continue
            elif col + size > width and col > start and size <= width - indent:
                newline()
            if col + size <= width:
                line.append((style, token))
                col += size
                continue
            for ch in token:  # longer than a whole line: cut it anywhere
                w = get_cwidth(ch)
                if col + w > width and col > start:
                    newline()
                line.append((style, ch))
                col += w
    lines.append(line)
    return lines


def render_entry(entry: Entry | Pending, width: int, own_name: str = "") -> list[Line]:
    prefix, body = entry_fragments(entry, own_name)
    return wrap(prefix, body, width)


def title(
    name: str,
    role: str,
    members: int | None,
    connection: str,
    width: int,
    scrolled: bool = False,
    unseen: int = 0,
) -> list[Fragment]:
    """The status bar: node name, role, members count, connection state; cut to ``width``.
    Scrolled back, it starts by saying so, with how many lines came in below (first: a
    narrow bar keeps it)."""
    parts = []
    if scrolled:
        parts.append("scrolled back: PageDown" + (f" ({unseen} new)" if unseen else ""))
    parts += [clean(name) or "?", role]
    if members is not None:
        parts.append(f"{members} member{'' if members == 1 else 's'}")
    parts.append(connection)
    text = " " + " | ".join(parts)
    cells: list[str] = []
    used = 0
    for ch in text:
        w = get_cwidth(ch)
        if used + w > width:
            break
        cells.append(ch)
        used += w
    return [("class:title", "".join(cells) + " " * (width - used))]
