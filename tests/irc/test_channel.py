"""Chat texts <-> IRC lines: splitting within 512 bytes, line breaks, CTCP ACTION, time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatd.irc.channel import chat_text, server_time, split_utf8, text_lines
from chatd.irc.parse import MAX_LINE_BYTES, parse_line

SOURCE = "alice!0123456789ab@chat"


def bodies(lines: list[bytes]) -> list[str]:
    out = []
    for line in lines:
        untagged = line.split(b" ", 1)[1] if line.startswith(b"@") else line
        assert len(untagged) <= MAX_LINE_BYTES and line.endswith(b"\r\n")  # tags aside
        message = parse_line(line[:-2])
        assert message is not None and message.params[0] == "#chat"
        out.append(message.params[1])
    return out


def test_a_short_text_is_one_privmsg() -> None:
    assert text_lines(SOURCE, "hello") == [b":alice!0123456789ab@chat PRIVMSG #chat hello\r\n"]


def test_a_4_kib_text_is_split_within_512_bytes_on_character_boundaries() -> None:
    text = "é" * 2000 + "😀" * 20  # 4080 bytes, none of it ASCII
    lines = text_lines(SOURCE, text, (("time", "2026-01-01T00:00:00.000Z"),))
    assert len(lines) > 8
    assert "".join(bodies(lines)) == text


def test_splits_prefer_a_space_near_the_end() -> None:
    words = " ".join(["word"] * 300)
    pieces = bodies(text_lines(SOURCE, words))
    assert len(pieces) > 1 and "".join(pieces) == words
    assert all(p.endswith(" ") for p in pieces[:-1])


def test_line_breaks_become_separate_messages_and_nul_is_replaced() -> None:
    assert bodies(text_lines(SOURCE, "one\n\ntwo\r\nthree\0")) == [
        "one",
        "two\ufffd",
        "three\ufffd",
    ]


def test_me_becomes_a_ctcp_action_and_back() -> None:
    (line,) = text_lines(SOURCE, "/me waves")
    assert line.endswith(b"PRIVMSG #chat :\x01ACTION waves\x01\r\n")
    assert chat_text("\x01ACTION waves\x01") == "/me waves"
    assert chat_text("\x01ACTION waves") == "/me waves"  # the closing \x01 is optional
    assert chat_text("\x01VERSION\x01") is None
    assert chat_text("plain") == "plain"


def test_long_actions_stay_actions_in_every_piece() -> None:
    pieces = bodies(text_lines(SOURCE, "/me " + "x" * 1000))
    assert len(pieces) == 3
    assert all(p.startswith("\x01ACTION ") and p.endswith("\x01") for p in pieces)


def test_server_time_is_utc_with_milliseconds() -> None:
    assert server_time("2026-12-01T15:04:36.111Z") == "2026-12-01T15:04:36.111Z"
    assert server_time("2026-12-01T16:04:36+01:00") == "2026-12-01T15:04:36.000Z"
    assert server_time("yesterday") is None


@given(st.text(max_size=300), st.integers(min_value=4, max_value=64))
def test_split_keeps_every_character_within_the_budget(text: str, budget: int) -> None:
    pieces = split_utf8(text, budget)
    assert "".join(pieces) == text
    assert all(0 < len(p.encode("utf-8", "surrogatepass")) <= budget for p in pieces)


def test_a_member_cannot_send_ctcp_to_irc_clients() -> None:
    (line,) = text_lines(SOURCE, "\x01DCC SEND x 1 2 3\x01")
    assert b"\x01" not in line
    (action,) = text_lines(SOURCE, "/me \x01VERSION\x01")
    assert action.count(b"\x01") == 2  # only the ACTION's own delimiters
