"""IRC lines: a small, strict parser and writer (RFC 1459/2812 with IRCv3 message tags).

A line from a client is at most ``MAX_TAGS_BYTES`` of tags (``@...`` and its space) plus
``MAX_LINE_BYTES`` of the rest, CRLF included (the classic 512). The rest must be UTF-8
without NUL, CR or LF. Anything else raises ``IrcParseError`` with a short reason (and a
``too_long`` flag, answered with ERR_INPUTTOOLONG): never any other exception.
"""

from __future__ import annotations

import re

from attrs import frozen

# The classic limit, CRLF included; without tags.
MAX_LINE_BYTES = 512
# Tags a client may send, '@' and the separating space included (IRCv3 message-tags).
MAX_TAGS_BYTES = 4096
# What the line reader accepts before it gives up on the connection: both parts + CRLF.
MAX_READ_BYTES = MAX_TAGS_BYTES + MAX_LINE_BYTES
MAX_PARAMS = 15

_COMMAND = re.compile(r"[A-Za-z]+|[0-9]{3}")
_TAG_KEY = re.compile(r"\+?(?:[A-Za-z0-9.-]+/)?[A-Za-z0-9-]+")
_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}


class IrcParseError(ValueError):
    """A line that is not a valid IRC message; ``str()`` says why (safe to log: no text)."""

    def __init__(self, reason: str, *, too_long: bool = False) -> None:
        super().__init__(reason)
        self.too_long = too_long


@frozen
class IrcMessage:
    command: str  # upper case
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # in order; a tag without value has ""


def parse_line(raw: bytes) -> IrcMessage | None:
    """One line without its line ending (a trailing CR is allowed); None for a blank line."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if b"\0" in raw or b"\r" in raw or b"\n" in raw:
        raise IrcParseError("NUL, CR or LF inside a line")
    tags: tuple[tuple[str, str], ...] = ()
    tagged = raw.startswith(b"@")
    if tagged:
        space = raw.find(b" ")
        if space < 0:
            raise IrcParseError("tags without a command")
        if space + 1 > MAX_TAGS_BYTES:
            raise IrcParseError(f"tags over {MAX_TAGS_BYTES} bytes", too_long=True)
        tags = _parse_tags(_text(raw[1:space]))
        raw = raw[space + 1 :].lstrip(b" ")
    if len(raw) + 2 > MAX_LINE_BYTES:
        raise IrcParseError(f"line over {MAX_LINE_BYTES} bytes", too_long=True)
    text = _text(raw).lstrip(" ")
    if not text:
        if tagged:
            raise IrcParseError("tags without a command")
        return None
    source = None
    if text.startswith(":"):
        source, _, text = text[1:].partition(" ")
        if not source:
            raise IrcParseError("empty source")
        text = text.lstrip(" ")
    command, _, rest = text.partition(" ")
    if not _COMMAND.fullmatch(command):
        raise IrcParseError("not a command")
    params: list[str] = []
    rest = rest.lstrip(" ")
    while rest:
        if rest.startswith(":"):
            params.append(rest[1:])
            break
        param, _, rest = rest.partition(" ")
        params.append(param)
        rest = rest.lstrip(" ")
    if len(params) > MAX_PARAMS:
        raise IrcParseError(f"more than {MAX_PARAMS} parameters")
    return IrcMessage(command.upper(), tuple(params), source, tags)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise IrcParseError("not UTF-8") from None


def _parse_tags(text: str) -> tuple[tuple[str, str], ...]:
    tags: list[tuple[str, str]] = []
    for item in text.split(";"):
        if not item:
            continue  # a trailing ';' is tolerated
        key, _, value = item.partition("=")
        if not _TAG_KEY.fullmatch(key):
            raise IrcParseError("bad tag key")
        tags.append((key, _unescape(value)))
    return tuple(tags)


def _unescape(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_UNESCAPE.get(nxt, nxt))  # unknown escapes drop the backslash
        else:
            out.append(ch)
    return "".join(out)


def escape_tag(value: str) -> str:
    return "".join(_ESCAPE.get(ch, ch) for ch in value)


def format_message(message: IrcMessage) -> bytes:
    """The wire form with CRLF. Raises ValueError if a parameter cannot be written (a middle
    one empty, with a space or starting with ':'; any with NUL, CR or LF): a bug of ours."""
    parts: list[str] = []
    if message.tags:
        parts.append(
            "@" + ";".join(k + ("=" + escape_tag(v) if v else "") for k, v in message.tags)
        )
    if message.source:
        parts.append(":" + message.source)
    parts.append(message.command)
    for i, param in enumerate(message.params):
        if any(c in param for c in "\0\r\n"):
            raise ValueError("NUL, CR or LF in a parameter")
        last = i == len(message.params) - 1
        if not param or " " in param or param.startswith(":"):
            if not last:
                raise ValueError("a middle parameter must be non-empty, without spaces or ':'")
            param = ":" + param
        parts.append(param)
    return " ".join(parts).encode("utf-8") + b"\r\n"
