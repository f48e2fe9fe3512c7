"""Tab completion of the input line: a command after ``/``, else a member's name.

Tab cycles through the matches in place (prompt_toolkit's menu-complete). A name at the
start of the line is completed as ``name: ``, as IRC clients do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from chatctl.chat.commands import COMMANDS


def candidates(before: str, names: Iterable[str]) -> tuple[list[str], int]:
    """What may replace the end of ``before`` (the text left of the cursor), and how many
    characters of it each replaces."""
    if before.startswith("/") and " " not in before:
        typed = before[1:].lower()
        return [f"/{name} " for name in COMMANDS if name.startswith(typed)], len(before)
    if not before or before[-1].isspace():  # no word being typed
        return [], 0
    word = before.rsplit(" ", 1)[-1]
    suffix = ": " if len(word) == len(before) else " "
    folded = word.casefold()
    matches = sorted(
        {n for n in names if n.casefold().startswith(folded) and n != word}, key=str.casefold
    )
    return [name + suffix for name in matches], len(word)


class ChatCompleter(Completer):
    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self.names = names

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        found, length = candidates(document.text_before_cursor, self.names())
        for text in found:
            yield Completion(text, start_position=-length)
