"""What the chat window shows: delivered messages and notices in order, then the texts
typed but not yet accepted by the node (the outbox), each with its state.

Pure: no I/O, no clock (callers pass timestamps). ``changed`` is called after every change
so the screen can be redrawn (the application coalesces redraws).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from enum import Enum
from itertools import count

from attrs import define, field, frozen

# Entries kept for scrolling back; older ones are forgotten (the node keeps the history).
MAX_ENTRIES = 5000
# Message ids remembered to show each message once across reconnects.
MAX_SEEN = 4 * MAX_ENTRIES

_serials = count()


def _serial() -> int:
    return next(_serials)


@frozen
class Said:
    """A delivered message; ``name`` is the sender's display name at delivery."""

    id: str
    node_id: str
    name: str
    at: str  # ISO 8601, as on the wire
    text: str
    serial: int = field(factory=_serial)


class Tone(Enum):
    NOTICE = "notice"  # presence and connection notices: `-- alice joined`
    INFO = "info"  # answers to /who, /status, /help
    ERROR = "error"  # something the user asked for did not happen


@frozen
class Notice:
    text: str
    tone: Tone = Tone.NOTICE
    at: str | None = None  # shown as a timestamp when given
    serial: int = field(factory=_serial)


Entry = Said | Notice


@define
class Pending:
    """A typed text not yet delivered; ``state`` says why (sending, waiting, ...)."""

    text: str
    state: str = "sending"
    id: str | None = None  # known once the node accepted it, until it is delivered
    serial: int = field(factory=_serial)


@define
class Transcript:
    changed: Callable[[], None] = lambda: None
    entries: deque[Entry] = field(factory=lambda: deque(maxlen=MAX_ENTRIES))
    pending: list[Pending] = field(factory=list)
    _seen: set[str] = field(factory=set)
    _seen_order: deque[str] = field(factory=deque)

    def add(self, entry: Entry) -> bool:
        """Show ``entry``; a message already shown (by id) is not shown twice: False."""
        if isinstance(entry, Said):
            if entry.id in self._seen:
                return False
            self._remember(entry.id)
            # The delivered message replaces its pending line.
            self.pending = [p for p in self.pending if p.id != entry.id]
        self.entries.append(entry)
        self.changed()
        return True

    def _remember(self, message_id: str) -> None:
        # Bounded: a reconnect repeats only the last few messages, never a day's worth.
        self._seen.add(message_id)
        self._seen_order.append(message_id)
        if len(self._seen_order) > MAX_SEEN:
            self._seen.discard(self._seen_order.popleft())

    def notice(self, text: str, tone: Tone = Tone.NOTICE, at: str | None = None) -> None:
        self.add(Notice(text, tone, at))

    def info(self, lines: list[str]) -> None:
        for line in lines:
            self.entries.append(Notice(line, Tone.INFO))
        self.changed()

    def queue(self, text: str, state: str) -> Pending:
        item = Pending(text, state)
        self.pending.append(item)
        self.changed()
        return item

    def update(self, item: Pending, state: str) -> None:
        if item.state != state:
            item.state = state
            self.changed()

    def accepted(self, item: Pending, message_id: str) -> None:
        """The node took ``item``: it stays shown as pending until delivered."""
        if message_id in self._seen:  # delivered before the answer came
            self.pending = [p for p in self.pending if p is not item]
        else:
            item.id = message_id
            item.state = "sent"
        self.changed()

    def drop(self, item: Pending, why: str) -> None:
        """``item`` will not be sent: say so, with its text, where it was."""
        self.pending = [p for p in self.pending if p is not item]
        self.entries.append(Notice(f"not sent ({why}): {item.text}", Tone.ERROR))
        self.changed()

    def unsent(self) -> list[Pending]:
        """Pending texts the node never accepted."""
        return [p for p in self.pending if p.id is None]

    def __iter__(self) -> Iterator[Entry | Pending]:
        yield from self.entries
        yield from self.pending
