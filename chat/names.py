"""Member names (nicknames): which are valid, and how members sharing one are told apart.

A name is 1 to 32 characters with no leading or trailing whitespace, no '#', and none of
the characters that can make text show other than it is: controls, format characters (the
bidi overrides and isolates, and the zero-width joiners and spaces: U+200D too, so an
emoji sequence joined by ZWJ is refused), line and paragraph separators, surrogates,
private-use and unassigned code points. Spaces inside a name are allowed.

Two current members whose names are equal once casefolded are both shown as
``name#xxxx``, xxxx the first 4 characters of the node-id (more while still ambiguous);
'#' is never part of a name, so a shown name cannot pose as another member's.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Iterable

MAX_NAME_CHARS = 32
# Unicode general categories a name may not contain: control, format (bidi included),
# line and paragraph separators, surrogate, private use, unassigned.
_REFUSED = {
    "Cc": "a control character",
    "Cf": "a format character (bidi or zero-width)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned character",
}
SHORT_ID = 4


def name_problem(name: str) -> str | None:
    """None if ``name`` is a valid member name, else one line saying why it is not.

    The reason names code points (U+202E), never the name itself: it goes to logs."""
    if not name:
        return "a name cannot be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"a name is at most {MAX_NAME_CHARS} characters (this one has {len(name)})"
    if name != name.strip():
        return "a name cannot start or end with whitespace"
    for ch in name:
        what = _REFUSED.get(unicodedata.category(ch))
        if what is not None:
            return f"a name cannot contain {what} (U+{ord(ch):04X})"
        if ch == "#":
            return "a name cannot contain '#' (it marks names shared by several members)"
    return None


def display_names(members: Iterable[tuple[str, str]]) -> dict[str, str]:
    """node-id -> the name to show: the name itself, or ``name#xxxx`` when several current
    members carry it (compared casefolded)."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for node_id, name in members:
        groups[name.casefold()].append((node_id, name))
    shown: dict[str, str] = {}
    for group in groups.values():
        if len(group) == 1:
            node_id, name = group[0]
            shown[node_id] = name
            continue
        length = SHORT_ID
        longest = max(len(node_id) for node_id, _ in group)
        while length < longest and len({n[:length] for n, _ in group}) < len(group):
            length += 1
        for node_id, name in group:
            shown[node_id] = f"{name}#{node_id[:length]}"
    return shown


def display_name(node_id: str, name: str, members: Iterable[tuple[str, str]]) -> str:
    """How to show ``node_id`` (named ``name``) among ``members``, whether or not it is
    one of them (a member that has just left is shown as it was)."""
    pairs = [(n, m) for n, m in members if n != node_id]
    pairs.append((node_id, name))
    return display_names(pairs)[node_id]
