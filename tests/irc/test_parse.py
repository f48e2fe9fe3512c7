"""The IRC line parser: what it accepts, what it refuses and why, and the writer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatd.irc.parse import (
    MAX_LINE_BYTES,
    MAX_TAGS_BYTES,
    IrcMessage,
    IrcParseError,
    format_message,
    parse_line,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"NICK alice", IrcMessage("NICK", ("alice",))),
        (b"privmsg #chat :hello there\r", IrcMessage("PRIVMSG", ("#chat", "hello there"))),
        (b"PRIVMSG #chat :", IrcMessage("PRIVMSG", ("#chat", ""))),
        (b"USER u 0 * :Real Name", IrcMessage("USER", ("u", "0", "*", "Real Name"))),
        (b":src PING  x   y", IrcMessage("PING", ("x", "y"), "src")),
        (b"CAP LS 302", IrcMessage("CAP", ("LS", "302"))),
        (b"PRIVMSG #chat ::-)", IrcMessage("PRIVMSG", ("#chat", ":-)"))),
        (b"PRIVMSG #chat :caf\xc3\xa9", IrcMessage("PRIVMSG", ("#chat", "café"))),
        (
            b"@+typing=active;msgid=a\\sb\\:c;flag TAGMSG #chat",
            IrcMessage(
                "TAGMSG", ("#chat",), tags=(("+typing", "active"), ("msgid", "a b;c"), ("flag", ""))
            ),
        ),
        (b"001 me :welcome", IrcMessage("001", ("me", "welcome"))),
    ],
)
def test_valid_lines(raw: bytes, expected: IrcMessage) -> None:
    assert parse_line(raw) == expected


@pytest.mark.parametrize("raw", [b"", b"   ", b"\r"])
def test_blank_lines_are_ignored(raw: bytes) -> None:
    assert parse_line(raw) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe garbage", "not UTF-8"),
        (b"PRIVMSG #chat :a\x00b", "NUL"),
        (b"PRIVMSG #chat :a\rb", "CR"),
        (b"12 x", "not a command"),
        (b"PRIV-MSG x", "not a command"),
        (b": PING", "empty source"),
        (b":src", "not a command"),
        (b"@tag", "tags without a command"),
        (b"@a=b ", "tags without a command"),
        (b"@ ", "tags without a command"),
        (b"@;  \r", "tags without a command"),
        (b"@bad!key=1 PING x", "bad tag key"),
        (b"X " + b"a " * 16, "more than 15 parameters"),
    ],
)
def test_invalid_lines_say_why(raw: bytes, reason: str) -> None:
    with pytest.raises(IrcParseError, match=reason) as caught:
        parse_line(raw)
    assert not caught.value.too_long


def test_the_512_byte_limit_excludes_tags() -> None:
    body = b"PRIVMSG #chat :" + b"x" * (MAX_LINE_BYTES - 2 - 15)
    assert len(body) == MAX_LINE_BYTES - 2
    assert parse_line(body) is not None
    assert parse_line(b"@" + b"k" * 4000 + b" " + body) is not None
    with pytest.raises(IrcParseError) as caught:
        parse_line(body + b"x")
    assert caught.value.too_long
    with pytest.raises(IrcParseError) as caught:
        parse_line(b"@" + b"k" * MAX_TAGS_BYTES + b" PING x")
    assert caught.value.too_long


def test_format_writes_a_trailing_parameter_only_when_needed() -> None:
    assert format_message(IrcMessage("JOIN", ("#chat",), "a!b@c")) == b":a!b@c JOIN #chat\r\n"
    assert format_message(IrcMessage("PRIVMSG", ("#chat", "hi there"))) == (
        b"PRIVMSG #chat :hi there\r\n"
    )
    assert format_message(IrcMessage("X", ("",))) == b"X :\r\n"
    assert format_message(IrcMessage("X", (":)",))) == b"X ::)\r\n"
    tagged = IrcMessage("PRIVMSG", ("#c", "t"), tags=(("time", "a;b c\\"),))
    assert format_message(tagged) == b"@time=a\\:b\\sc\\\\ PRIVMSG #c t\r\n"


@pytest.mark.parametrize(
    "bad",
    [
        IrcMessage("X", ("a b", "c")),
        IrcMessage("X", ("", "c")),
        IrcMessage("X", (":a", "c")),
        IrcMessage("X", ("a\r\nQUIT",)),
    ],
)
def test_format_refuses_what_cannot_be_written(bad: IrcMessage) -> None:
    with pytest.raises(ValueError):
        format_message(bad)


@given(st.binary(max_size=600))
def test_any_bytes_parse_or_fail_cleanly_and_round_trip(raw: bytes) -> None:
    try:
        message = parse_line(raw)
    except IrcParseError as exc:
        assert str(exc)
        return
    if message is not None:
        assert parse_line(format_message(message).removesuffix(b"\r\n")) == message
