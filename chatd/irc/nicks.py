"""IRC nicks for members, derived from their display names (README: IRC gateway).

The rule: letters are folded to ASCII where Unicode gives them a plain form (``José`` ->
``Jose``); '#' (which marks a shared name, ``alice#3fa2``) becomes '|'; every other
character IRC does not allow in a nick becomes '_' (runs of them one '_'); a nick may not
start with a digit or '-', so one that would gets a leading '_'; at most ``BASE_LEN``
characters. Nicks are compared ASCII-case-insensitively (``CASEMAPPING=ascii``): when
several current members would get the same nick, each gets ``|`` and the first 4
characters of its node-id appended (more while still ambiguous). The result depends only
on the current members' node-ids and display names, so every client sees the same nick
for a member while its name and the membership stay the same.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

# Longest nick announced in ISUPPORT (NICKLEN): a 32-character name, '|' and a node-id prefix.
NICKLEN = 48
BASE_LEN = 32
SHORT_ID = 4
_ALLOWED = re.compile(r"[A-Za-z0-9\[\]\\`_^{|}-]")
_VALID = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*")


def fold(nick: str) -> str:
    """The comparison key under CASEMAPPING=ascii."""
    return nick.translate(_LOWER)


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def is_valid_nick(nick: str) -> bool:
    return len(nick) <= NICKLEN and _VALID.fullmatch(nick) is not None


def base_nick(display: str) -> str:
    """The nick for ``display`` alone, before telling apart members who share it."""
    plain = unicodedata.normalize("NFKD", display)
    out: list[str] = []
    for ch in plain:
        if unicodedata.combining(ch):
            continue  # the accent of a letter folded to ASCII
        if ch == "#":
            ch = "|"
        elif not _ALLOWED.fullmatch(ch):
            ch = "_"
        if ch == "_" and out and out[-1] == "_":
            continue
        out.append(ch)
    nick = "".join(out)[:BASE_LEN]
    if not nick or nick[0].isdigit() or nick[0] == "-":
        nick = ("_" + nick)[:BASE_LEN]
    return nick


def irc_nicks(members: Iterable[tuple[str, str]]) -> dict[str, str]:
    """node-id -> nick for the current members, given as (node-id, display name)."""
    bases = {node_id: base_nick(display) for node_id, display in members}
    groups: dict[str, list[str]] = defaultdict(list)
    for node_id, nick in bases.items():
        groups[fold(nick)].append(node_id)
    nicks: dict[str, str] = {}
    for ids in groups.values():
        if len(ids) == 1:
            nicks[ids[0]] = bases[ids[0]]
            continue
        length = SHORT_ID
        while length < max(len(i) for i in ids) and len({i[:length] for i in ids}) < len(ids):
            length += 1
        for node_id in ids:
            suffix = "".join(c if _ALLOWED.fullmatch(c) else "_" for c in node_id[:length])
            nicks[node_id] = f"{bases[node_id]}|{suffix}"
    taken = [fold(n) for n in nicks.values()]
    if len(set(taken)) < len(taken):
        # A suffixed nick equals another member's own (someone named "alice|3fa2"): the
        # later ones by node-id get a counter. Rare; still unique and deterministic.
        seen: set[str] = set()
        for node_id in sorted(nicks):
            nick, n = nicks[node_id], 1
            while fold(nick) in seen:
                n += 1
                nick = f"{nicks[node_id]}{n}"
            seen.add(fold(nick))
            nicks[node_id] = nick
    return nicks
