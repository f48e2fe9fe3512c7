"""Local subscribers to what the node delivers (``tail -f``, the IRC gateway): one bounded
queue each, filled without waiting; a subscriber that falls too far behind is cut off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, overload

import trio

from chat.log import Logger
from chat.wire import Message
from chatd.core.presence import Presence


class Fanout:
    def __init__(self, queue_items: int, log: Callable[[], Logger]) -> None:
        self._queue_items = queue_items
        self._log = log
        # Each subscriber's queue, its on_drop, and whether it takes presence events too.
        self._subscribers: dict[
            trio.MemorySendChannel[Message | Presence], tuple[Callable[[], None], bool]
        ] = {}

    @overload
    def subscribe(
        self, on_drop: Callable[[], None] = ..., presence: Literal[False] = False
    ) -> trio.MemoryReceiveChannel[Message]: ...

    @overload
    def subscribe(
        self, on_drop: Callable[[], None] = ..., *, presence: bool
    ) -> trio.MemoryReceiveChannel[Message | Presence]: ...

    def subscribe(
        self, on_drop: Callable[[], None] = lambda: None, presence: bool = False
    ) -> trio.MemoryReceiveChannel[Message] | trio.MemoryReceiveChannel[Message | Presence]:
        """A stream of every message delivered from now on, and with ``presence`` every
        presence event too (chatd.core.presence), in the order the node saw them.

        One that falls ``queue_items`` behind is closed and ``on_drop`` called: its reader
        may be blocked writing to a client that stopped reading, and must be cut off rather
        than left to drain a backlog the client no longer wants.
        """
        send, receive = trio.open_memory_channel[Message | Presence](self._queue_items)
        self._subscribers[send] = (on_drop, presence)
        return receive

    def publish(self, item: Message | Presence) -> None:
        for subscriber, (on_drop, presence) in list(self._subscribers.items()):
            if isinstance(item, Presence) and not presence:
                continue
            try:
                subscriber.send_nowait(item)
            except trio.WouldBlock:
                del self._subscribers[subscriber]
                subscriber.close()
                self._log().warning("tail.dropped", reason="the client reads too slowly")
                on_drop()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                del self._subscribers[subscriber]  # the client has gone

    def close(self) -> None:
        """End every subscription (the node has left)."""
        for subscriber in self._subscribers:
            subscriber.close()
