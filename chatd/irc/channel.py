"""The one channel, ``#chat``: chat texts <-> IRC lines.

A chat text may hold line breaks and be up to 4 KiB; an IRC line may not, and is at most
512 bytes. A text becomes one PRIVMSG per line of it, each split (on a space when one is
near the end, else between characters, never inside one) so that every line sent fits
in 512 bytes. ``/me waves`` becomes a CTCP ACTION, and a CTCP ACTION from the client is
sent as ``/me ...``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from chatd.irc.parse import MAX_LINE_BYTES, IrcMessage, format_message

CHANNEL = "#chat"
ACTION_PREFIX = "/me "
CTCP = "\x01"
# Characters no IRC line may carry, and CTCP's delimiter (a member's text must not make
# IRC clients answer VERSION or offer a DCC): shown as U+FFFD.
_FORBIDDEN = str.maketrans({"\0": "\ufffd", "\r": "\ufffd", CTCP: "\ufffd"})


def is_channel(name: str) -> bool:
    return name.lower() == CHANNEL


def chat_text(irc_text: str) -> str | None:
    """What a client's PRIVMSG text to the channel sends; None for a CTCP other than ACTION
    (VERSION, PING...: the gateway does not relay them)."""
    if irc_text.startswith(CTCP):
        body = irc_text[1:].removesuffix(CTCP)
        command, _, rest = body.partition(" ")
        if command.upper() != "ACTION":
            return None
        return ACTION_PREFIX + rest
    return irc_text


def split_utf8(text: str, budget: int) -> list[str]:
    """``text`` in pieces of at most ``budget`` UTF-8 bytes each, cut between characters,
    preferably after a space in the last quarter of a piece. ``budget`` must be >= 4."""
    pieces: list[str] = []
    data = text.encode("utf-8", "surrogatepass")
    while len(data) > budget:
        cut = budget
        while cut > 0 and (data[cut] & 0xC0) == 0x80:
            cut -= 1  # not inside a multi-byte character
        space = data.rfind(b" ", cut * 3 // 4, cut)
        if space > 0:
            cut = space + 1
        pieces.append(data[:cut].decode("utf-8", "surrogatepass"))
        data = data[cut:]
    if data:
        pieces.append(data.decode("utf-8", "surrogatepass"))
    return pieces


def server_time(timestamp: str) -> str | None:
    """A message's timestamp as an IRCv3 ``time`` tag (UTC, milliseconds); None if it is
    not a timestamp (another node's clock format is not trusted)."""
    try:
        when = datetime.fromisoformat(timestamp)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    except (ValueError, OverflowError):
        return None


def text_lines(
    source: str,
    text: str,
    tags: tuple[tuple[str, str], ...] = (),
    command: str = "PRIVMSG",
    target: str = CHANNEL,
) -> list[bytes]:
    """The lines that carry chat ``text`` from ``source`` (``nick!user@host``)."""
    action = text.startswith(ACTION_PREFIX)
    if action:
        text = text[len(ACTION_PREFIX) :]
    wrap = 2 + len("ACTION ") if action else 0
    # ":source COMMAND target :" + text + CRLF
    overhead = len(f":{source} {command} {target} :".encode()) + 2 + wrap
    budget = max(MAX_LINE_BYTES - overhead, 16)
    lines: list[bytes] = []
    for row in text.translate(_FORBIDDEN).split("\n"):
        if not row.strip():
            continue
        for piece in split_utf8(row, budget):
            body = f"{CTCP}ACTION {piece}{CTCP}" if action else piece
            lines.append(format_message(IrcMessage(command, (target, body), source, tags)))
    return lines
