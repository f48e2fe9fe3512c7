"""Member names: which are valid (chat.names.name_problem) and how shared ones are shown."""

from __future__ import annotations

import pytest

from chat.names import display_name, display_names, name_problem


@pytest.mark.parametrize(
    "name",
    ["alice", "a", "x" * 32, "Zoë", "日本語", "carol d", "bob-2_x.y", "O'Brien", "\U0001f600"],
)
def test_valid_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "cannot be empty"),
        ("x" * 33, "at most 32 characters (this one has 33)"),
        (" alice", "start or end with whitespace"),
        ("alice\t", "start or end with whitespace"),
        ("al#ice", "cannot contain '#'"),
        ("evil\u202egnp.exe", "format character (bidi or zero-width) (U+202E)"),
        ("a\u2066b", "format character (bidi or zero-width) (U+2066)"),
        # ZWJ is a format character too: refused, so an emoji ZWJ sequence is not a name.
        ("\U0001f468\u200d\U0001f469", "(U+200D)"),
        ("a\u200bb", "(U+200B)"),
        ("a\x1b[2Jb", "control character (U+001B)"),
        ("a\nb", "control character (U+000A)"),
        ("a\x85b", "control character (U+0085)"),
        ("a\u2028b", "line separator (U+2028)"),
        ("a\u2029b", "paragraph separator (U+2029)"),
        ("a\ue000b", "private-use character (U+E000)"),
        ("a\udc80b", "surrogate (U+DC80)"),
        ("a\U000e0001b", "format character"),  # a language tag
        ("a\u0378b", "unassigned character (U+0378)"),
    ],
)
def test_invalid_names_say_why_without_repeating_the_name(name: str, why: str) -> None:
    problem = name_problem(name)
    assert problem is not None and why in problem
    assert "\n" not in problem and (not name or name not in problem)


def test_a_name_carried_once_is_shown_as_is() -> None:
    assert display_names([("aaaa1111", "alice"), ("bbbb2222", "bob")]) == {
        "aaaa1111": "alice",
        "bbbb2222": "bob",
    }


def test_a_shared_name_is_told_apart_by_the_node_id_casefolded() -> None:
    shown = display_names([("3fa2aaaa", "alice"), ("77c1bbbb", "ALICE"), ("9d00cccc", "bob")])
    assert shown == {"3fa2aaaa": "alice#3fa2", "77c1bbbb": "ALICE#77c1", "9d00cccc": "bob"}


def test_the_suffix_grows_while_the_first_four_characters_agree() -> None:
    shown = display_names([("3fa2a111", "al"), ("3fa2b222", "al"), ("0000c333", "al")])
    assert shown == {"3fa2a111": "al#3fa2a", "3fa2b222": "al#3fa2b", "0000c333": "al#0000c"}


def test_display_name_of_a_node_that_just_left_among_the_members() -> None:
    members = [("3fa2aaaa", "alice"), ("9d00cccc", "bob")]
    assert display_name("77c1bbbb", "alice", members) == "alice#77c1"
    assert display_name("77c1bbbb", "carol", members) == "carol"
    assert display_name("3fa2aaaa", "alice", members) == "alice"
