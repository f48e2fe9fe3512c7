"""IRC lines from a client (``chatd.irc.parse``)."""

from __future__ import annotations

import random

from chat_testing.fuzz.common import timed
from chat_testing.fuzz.mutate import mutate_bytes
from chatd.irc.parse import MAX_PARAMS, IrcMessage, IrcParseError, format_message, parse_line

_IRC_SAMPLES = [
    b"CAP LS 302",
    b"CAP REQ :server-time message-tags",
    b"PASS s3cret-password",
    b"NICK alice",
    b"USER alice 0 * :Alice Liddell",
    b"JOIN #chat",
    b"PRIVMSG #chat :hello there",
    b"PRIVMSG #chat :\x01ACTION waves\x01",
    b"NOTICE #chat :caf\xc3\xa9 \xf0\x9f\x98\x80",
    b"@+typing=active;msgid=a\\sb\\:c;flag TAGMSG #chat",
    b"@time=2026-12-01T10:00:00.000Z :src!u@h PRIVMSG #chat ::-) x",
    b"WHO #chat",
    b"MODE #chat +b",
    b"PING :token with spaces",
    b"QUIT :bye",
    b"001 me :welcome",
]
_IRC_TOKENS = [b" ", b":", b"@", b";", b"=", b"\\", b"\r", b"\x00", b"\x01", b"\xff", b"#", b"!"]


def irc_line_input(rng: random.Random) -> bytes:
    """A line as the gateway's reader hands it over (no LF): valid, mutated or junk."""
    roll = rng.random()
    if roll < 0.08:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    data = rng.choice(_IRC_SAMPLES)
    if roll < 0.2:
        return data
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        if rng.random() < 0.3:
            pos = rng.randrange(len(data) + 1)
            data = data[:pos] + rng.choice(_IRC_TOKENS) * rng.choice([1, 2, 15, 300]) + data[pos:]
        else:
            data = mutate_bytes(data, rng, _IRC_SAMPLES)
    return data.replace(b"\n", b"")


def check_irc_line(raw: bytes) -> IrcMessage | None:
    """The IRC parser's invariant: None (blank), ``IrcParseError`` saying why, or a message
    within the bounds that writes back to a line parsing to the same message."""
    try:
        message = timed(parse_line, raw)
    except IrcParseError as exc:
        assert str(exc), "an IrcParseError must say why"
        return None
    if message is None:
        assert not raw.strip(b" \r"), "a line with content parsed as blank"
        return None
    assert message.command and message.command == message.command.upper()
    assert len(message.params) <= MAX_PARAMS
    # Tag values may hold CR and LF (escaped on the wire); parameters never.
    for text in message.params:
        assert not any(c in text for c in "\0\r\n"), "NUL, CR or LF in a parameter"
    again = format_message(message)
    assert parse_line(again.removesuffix(b"\r\n")) == message, "written back, parses differently"
    return message
