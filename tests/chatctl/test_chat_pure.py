"""The pure parts of ``chatctl chat``: command parsing, name colours, line formatting and
wrapping, the transcript's bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prompt_toolkit.utils import get_cwidth

from chat.wire import MAX_TEXT_BYTES
from chatctl.chat import commands
from chatctl.chat.commands import Help, Leave, Nick, Nothing, Quit, Say, ShowStatus, Usage, Who
from chatctl.chat.complete import candidates
from chatctl.chat.render import PALETTE, colour_of, hhmm, render_entry, title, wrap
from chatctl.chat.screen import TranscriptControl
from chatctl.chat.transcript import Notice, Pending, Said, Tone, Transcript

ALICE = "3fa2" + "0" * 28
AT = "2026-03-01T12:34:56+00:00"


def text_of(line: Sequence[tuple[Any, ...]]) -> str:
    return "".join(fragment[1] for fragment in line)


# -- commands --


@pytest.mark.parametrize(
    ("typed", "meaning"),
    [
        ("hello", Say("hello")),
        ("  indented stays as typed", Say("  indented stays as typed")),
        ("//etc/hosts is a path", Say("/etc/hosts is a path")),
        ("/me waves", Say("/me waves")),
        ("/ME  waves twice", Say("/me waves twice")),
        ("/who", Who()),
        ("/WHO", Who()),
        ("/nick  bob ", Nick("bob")),
        ("/nick bob smith", Nick("bob smith")),
        ("/status", ShowStatus()),
        ("/leave", Leave()),
        ("/quit", Quit()),
        ("/help", Help()),
        ("", Nothing()),
        ("   ", Nothing()),
    ],
)
def test_parse(typed: str, meaning: commands.Command) -> None:
    assert commands.parse(typed) == meaning


@pytest.mark.parametrize(
    ("typed", "hint"),
    [
        ("/me", "usage: /me ACTION"),
        ("/me   ", "usage: /me ACTION"),
        ("/nick", "usage: /nick NAME"),
        ("/quit now", "/quit takes no argument"),
        ("/frobnicate x", "unknown command /frobnicate: /help lists the commands"),
        ("/", "unknown command /:"),
    ],
)
def test_misuse_gets_a_hint(typed: str, hint: str) -> None:
    parsed = commands.parse(typed)
    assert isinstance(parsed, Usage)
    assert parsed.hint.startswith(hint)


def test_unknown_command_says_how_to_send_it_as_text() -> None:
    parsed = commands.parse("/shrug")
    assert isinstance(parsed, Usage) and "//shrug" in parsed.hint


def test_help_lists_every_command() -> None:
    text = "\n".join(commands.help_lines())
    for name in ("/me", "/who", "/nick", "/status", "/leave", "/quit", "/help", "//TEXT"):
        assert name in text
    assert "node stays" in text  # /quit vs /leave is explicit


# -- colours --


def test_colour_is_stable_and_from_the_palette() -> None:
    # Fixed expectations: a change of the rule (or a salted hash) fails here.
    assert colour_of(ALICE) == colour_of(ALICE)
    assert colour_of("a" * 32) == "ansired"
    assert colour_of("b" * 32) == "ansibrightred"
    assert {colour_of(f"{n:032x}") for n in range(200)} == set(PALETTE)


# -- formatting --


def test_message_line() -> None:
    (line,) = render_entry(Said("m1", ALICE, "alice", AT, "hello"), 80)
    assert text_of(line) == f"{hhmm(AT)} alice: hello"
    name_style = next(style for style, text in line if text == "alice")
    assert f"fg:{colour_of(ALICE)}" in name_style


def test_action_line() -> None:
    (line,) = render_entry(Said("m1", ALICE, "alice", AT, "/me waves"), 80)
    assert text_of(line) == f"{hhmm(AT)} * alice waves"


def test_notice_and_pending_lines() -> None:
    (notice,) = render_entry(Notice("alice joined", Tone.NOTICE, AT), 80)
    assert text_of(notice) == f"{hhmm(AT)} -- alice joined"
    (pending,) = render_entry(Pending("hi", "waiting: node not ready"), 80)
    assert text_of(pending) == "(waiting: node not ready) hi"
    (action,) = render_entry(Pending("/me waves"), 80, own_name="bob")
    assert text_of(action) == "(sending) * bob waves"


def test_network_text_cannot_drive_the_terminal() -> None:
    lines = render_entry(Said("m1", ALICE, "al\x1b[2Jice", AT, "a\x1b]0;pwned\x07b\nc"), 200)
    shown = "".join(text_of(line) for line in lines)
    assert "\x1b" not in shown and "\x07" not in shown and "\n" not in shown
    assert "\\x1b" in shown


def test_bad_timestamp_still_shows_the_message() -> None:
    assert hhmm("yesterday") == "--:--"
    (line,) = render_entry(Said("m1", ALICE, "alice", "yesterday", "hi"), 80)
    assert text_of(line) == "--:-- alice: hi"


# -- wrapping --


def test_wrap_at_spaces_with_a_hanging_indent() -> None:
    lines = wrap([("", "12:34 al: ")], [("", "one two three four five six")], 20)
    assert [text_of(line) for line in lines] == [
        "12:34 al: one two",
        "          three four",
        "          five six",
    ]


def test_a_word_longer_than_the_line_is_cut() -> None:
    lines = wrap([("", "> ")], [("", "x" * 25)], 10)
    assert [text_of(line) for line in lines] == ["> xxxxxxxx", "  xxxxxxxx", "  xxxxxxxx", "  x"]


def test_a_wide_prefix_falls_back_to_a_small_indent() -> None:
    lines = wrap([("", "12:34 a-long-name: ")], [("", "aaa bbb ccc ddd")], 24)
    assert [text_of(line) for line in lines] == ["12:34 a-long-name: aaa", "  bbb ccc ddd"]


def test_wide_characters_count_two_columns() -> None:
    lines = wrap([], [("", "日本語のテキスト")], 6)
    assert [text_of(line) for line in lines] == ["日本語", "のテキ", "スト"]


def test_styles_survive_wrapping() -> None:
    lines = wrap([("class:a", "ab ")], [("class:b", "cd ef gh")], 8)
    assert lines == [
        [("class:a", "ab "), ("class:b", "cd"), ("class:b", " "), ("class:b", "ef")],
        [("", "   "), ("class:b", "gh")],
    ]


@given(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=200),
    st.integers(min_value=1, max_value=100),
)
def test_wrapped_lines_fit_and_keep_every_word(text: str, width: int) -> None:
    lines = wrap([("", "12:34 alice: ")], [("", text)], width)
    for line in lines:
        shown = text_of(line)
        # Only a single character wider than the whole line may overflow it.
        assert sum(get_cwidth(ch) for ch in shown) <= width or len(shown.strip()) == 1
    words = "".join(text_of(line) for line in lines).split()
    assert "".join(words) == "".join(("12:34 alice: " + text).split())


def test_title_bar() -> None:
    (fragment,) = title("alice", "coordinator", 3, "connected", 60)
    assert fragment[1].rstrip() == " alice | coordinator | 3 members | connected"
    assert len(fragment[1]) == 60
    (narrow,) = title("alice", "member", 1, "connected", 12)
    assert narrow[1] == " alice | mem"
    (scrolled,) = title("alice", "member", 1, "connected", 30, scrolled=True)
    assert scrolled[1] == " scrolled back: PageDown | ali"


# -- transcript --


def test_a_message_is_shown_once_and_replaces_its_pending_line() -> None:
    changes: list[int] = []
    transcript = Transcript(changed=lambda: changes.append(1))
    typed = transcript.queue("hi", "sending")
    transcript.accepted(typed, "m1")
    assert typed.state == "sent" and list(transcript) == [typed]
    said = Said("m1", ALICE, "alice", AT, "hi")
    assert transcript.add(said)
    assert not transcript.add(Said("m1", ALICE, "alice", AT, "hi"))  # after a reconnect
    assert list(transcript) == [said]
    assert changes


def test_delivered_before_the_answer() -> None:
    transcript = Transcript()
    typed = transcript.queue("hi", "sending")
    transcript.add(Said("m1", ALICE, "alice", AT, "hi"))
    transcript.accepted(typed, "m1")
    assert transcript.pending == []


def test_a_dropped_text_is_shown_with_its_reason_and_never_accepted_ones_are_listed() -> None:
    transcript = Transcript()
    first = transcript.queue("one", "sending")
    second = transcript.queue("two", "waiting: node gone")
    transcript.drop(first, "too-large")
    (entry,) = transcript.entries
    assert isinstance(entry, Notice) and entry.tone is Tone.ERROR
    assert entry.text == "not sent (too-large): one"
    assert transcript.unsent() == [second]


def test_a_bare_me_is_an_ordinary_text() -> None:
    (line,) = render_entry(Said("m1", ALICE, "alice", AT, "/me "), 80)
    assert text_of(line) == f"{hhmm(AT)} alice: /me "


# -- the discussion pane --


def shown(pane: TranscriptControl, width: int = 40, height: int = 5) -> list[str]:
    content = pane.create_content(width, height)
    return [text_of(content.get_line(i)) for i in range(content.line_count)]


def test_the_pane_shows_the_newest_lines_at_the_bottom() -> None:
    transcript = Transcript()
    pane = TranscriptControl(transcript, lambda: "bob")
    transcript.info(["one", "two"])
    assert shown(pane) == ["", "", "", "one", "two"]
    transcript.queue("typed", "sending")
    assert shown(pane)[-1] == "(sending) typed"


def test_scrolling_back_holds_the_view_while_lines_arrive() -> None:
    transcript = Transcript()
    pane = TranscriptControl(transcript, lambda: "bob")
    transcript.info([f"line {n}" for n in range(20)])
    assert shown(pane) == [f"line {n}" for n in range(15, 20)]
    pane.page_up()  # a page is the pane's height less one line
    assert shown(pane) == [f"line {n}" for n in range(11, 16)]
    transcript.info(["new 1", "new 2"])
    assert shown(pane) == [f"line {n}" for n in range(11, 16)] and pane.unseen() == 2
    for _ in range(10):
        pane.page_up()
    assert shown(pane)[0] == "line 0"  # stops at the top
    for _ in range(10):
        pane.page_down()
    assert shown(pane)[-2:] == ["new 1", "new 2"] and pane.scroll == 0 and pane.unseen() == 0


# -- completion --


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        ("/w", (["/who "], 2)),
        ("/", ([f"/{name} " for name in commands.COMMANDS], 1)),
        ("/x", ([], 2)),
        ("ca", (["carol: ", "Casimir: "], 2)),  # at the start: addressed to
        ("hi ca", (["carol ", "Casimir "], 2)),
        ("hi CAR", (["carol "], 3)),
        ("hi carol", ([], 5)),  # complete already
        ("hi ", ([], 0)),
        ("", ([], 0)),
    ],
)
def test_completion(before: str, expected: tuple[list[str], int]) -> None:
    assert candidates(before, ["carol", "Casimir", "bob", "carol"]) == expected


def test_a_text_over_the_limit_holds_back_the_whole_paste() -> None:
    fits: list[commands.Command] = [
        Say("x" * MAX_TEXT_BYTES),
        Who(),
        Say("é" * (MAX_TEXT_BYTES // 2)),
    ]
    assert commands.too_long(fits) is None
    over = Say("é" * (MAX_TEXT_BYTES // 2 + 1))  # bytes count, not characters
    problem = commands.too_long([Say("hello"), over])
    assert problem is not None
    assert problem.startswith(f"too long: {MAX_TEXT_BYTES + 2} bytes, the limit is")
