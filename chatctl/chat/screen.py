"""The chat window's discussion pane: the transcript, wrapped to the pane's width, its
latest lines at the bottom (next to the input line), scrollable by pages.

Only the lines on screen are wrapped at each redraw (walking back from the newest entry),
and each entry's wrapped lines are cached per width, so a long history or a flood of
messages costs no more per redraw than a screenful.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import chain, dropwhile, takewhile

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import UIContent, UIControl

from chatctl.chat.render import Line, render_entry
from chatctl.chat.transcript import Entry, Pending, Transcript


class TranscriptControl(UIControl):
    def __init__(self, transcript: Transcript, own_name: Callable[[], str]) -> None:
        self.transcript = transcript
        self.own_name = own_name
        self.scroll = 0  # lines scrolled back from the bottom
        self.height = 1  # the pane's height at the last redraw
        # Scrolled back, the view ends at the entry that was newest when scrolling began,
        # so what arrives meanwhile does not move the text being read.
        self._mark: int | None = None
        self._cache: dict[int, tuple[int, list[Line]]] = {}

    def is_focusable(self) -> bool:
        return False

    def page_up(self) -> None:
        if self._mark is None:
            entries = self.transcript.entries
            self._mark = entries[-1].serial if entries else -1
        self.scroll += max(1, self.height - 1)

    def page_down(self) -> None:
        self.scroll = max(0, self.scroll - max(1, self.height - 1))
        if self.scroll == 0:
            self.bottom()

    def bottom(self) -> None:
        self.scroll = 0
        self._mark = None

    def unseen(self) -> int:
        """Entries that arrived below the view while scrolled back."""
        if self._mark is None:
            return 0
        mark = self._mark
        newer = takewhile(lambda e: e.serial > mark, reversed(self.transcript.entries))
        return sum(1 for _ in newer)

    def create_content(self, width: int, height: int) -> UIContent:
        self.height = height
        wanted = height + self.scroll
        mark = self._mark
        entries, pending = self.transcript.entries, self.transcript.pending
        newest_first: Iterable[Entry | Pending]
        if mark is None:
            newest_first = chain(reversed(pending), reversed(entries))
        else:
            newest_first = dropwhile(lambda e: e.serial > mark, reversed(entries))
        lines: list[Line] = []
        chunks: list[list[Line]] = []
        got = 0
        for entry in newest_first:
            chunk = self._lines(entry, width)
            chunks.append(chunk)
            got += len(chunk)
            if got >= wanted:
                break
        for chunk in reversed(chunks):
            lines.extend(chunk)
        # Not past the oldest line: scrolling back stops at the top.
        self.scroll = min(self.scroll, max(0, len(lines) - height))
        end = len(lines) - self.scroll
        shown = lines[max(0, end - height) : end]
        shown = [[] for _ in range(height - len(shown))] + shown  # newest at the bottom

        def line(i: int) -> StyleAndTextTuples:
            return list(shown[i])

        return UIContent(get_line=line, line_count=len(shown), show_cursor=False)

    def _lines(self, entry: Entry | Pending, width: int) -> list[Line]:
        if isinstance(entry, Pending):  # its state changes: never cached
            return render_entry(entry, width, self.own_name())
        cached = self._cache.get(entry.serial)
        if cached is not None and cached[0] == width:
            return cached[1]
        lines = render_entry(entry, width)
        if len(self._cache) > 4 * len(self.transcript.entries) + 100:
            self._cache.clear()  # forget entries that scrolled out of the transcript
        self._cache[entry.serial] = (width, lines)
        return lines
