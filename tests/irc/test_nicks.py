"""IRC nicks from display names: valid, unique, stable (the rule in chatd.irc.nicks)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chatd.irc.nicks import NICKLEN, base_nick, fold, irc_nicks, is_valid_nick


def test_valid_names_stay_as_they_are() -> None:
    assert base_nick("alice") == "alice"
    assert base_nick("Bob_2[x]") == "Bob_2[x]"


def test_invalid_characters_are_replaced() -> None:
    assert base_nick("José") == "Jose"
    assert base_nick("Anna Maria") == "Anna_Maria"
    assert base_nick("a  !? b") == "a_b"  # a run becomes one '_'
    assert base_nick("alice#3fa2") == "alice|3fa2"  # a shared name, as the contract shows it
    assert base_nick("2pac") == "_2pac"
    assert base_nick("-x") == "_-x"
    assert base_nick("漢字") == "_"
    assert len(base_nick("x" * 200)) == 32


def test_members_sharing_a_nick_get_their_node_id() -> None:
    nicks = irc_nicks([("aaaa1111", "José"), ("bbbb2222", "Jose"), ("cccc3333", "bob")])
    assert nicks == {"aaaa1111": "Jose|aaaa", "bbbb2222": "Jose|bbbb", "cccc3333": "bob"}


def test_case_only_differences_collide() -> None:
    nicks = irc_nicks([("aaaa1111", "Bob"), ("bbbb2222", "bob")])
    assert nicks == {"aaaa1111": "Bob|aaaa", "bbbb2222": "bob|bbbb"}


def test_a_longer_id_prefix_when_four_characters_are_shared() -> None:
    nicks = irc_nicks([("abcd1111", "x"), ("abcd2222", "x")])
    assert nicks == {"abcd1111": "x|abcd1", "abcd2222": "x|abcd2"}


def test_a_suffixed_nick_taken_by_a_name_still_ends_unique() -> None:
    members = [("aaaa1111", "al"), ("bbbb2222", "al"), ("cccc3333", "al|aaaa")]
    nicks = irc_nicks(members)
    assert len({fold(v) for v in nicks.values()}) == 3


names = st.text(min_size=1, max_size=40)
ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


@given(st.dictionaries(ids, names, max_size=12))
def test_nicks_are_valid_unique_and_do_not_depend_on_order(members: dict[str, str]) -> None:
    pairs = list(members.items())
    nicks = irc_nicks(pairs)
    assert set(nicks) == set(members)
    assert all(is_valid_nick(nick) and len(nick) <= NICKLEN for nick in nicks.values())
    assert len({fold(nick) for nick in nicks.values()}) == len(nicks)
    assert irc_nicks(reversed(pairs)) == nicks
