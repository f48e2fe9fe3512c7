"""Which messages a node holds, as hashes: equal clocks but different messages show.

Each origin's delivered messages, by sequence number, form a hash chain over their
signatures; the history hash covers every chain. Two nodes with equal clocks and unequal
hashes hold different versions of some message (an equivocation one of them missed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from chat.wire import Message


class Chains:
    def __init__(self) -> None:
        self._chains: dict[str, bytes] = {}  # origin -> hash chain of its delivered messages
        self._total: str | None = None

    def extend(self, message: Message) -> None:
        origin = message.node_id
        link = hashlib.blake2b(self._chains.get(origin, b""), digest_size=16)
        link.update(message.signature.encode())
        self._chains[origin] = link.digest()
        self._total = None

    def rebuild(self, origin: str, messages: Iterable[Message]) -> None:
        """Chain ``origin``'s ``messages`` (by sequence number) afresh."""
        self._chains.pop(origin, None)
        for message in messages:
            self.extend(message)

    def total(self) -> str:
        if self._total is None:
            total = hashlib.blake2b(digest_size=16)
            for origin in sorted(self._chains):
                total.update(origin.encode() + self._chains[origin])
            self._total = total.hexdigest()
        return self._total

    def hashes(self) -> dict[str, str]:
        return {origin: chain.hex() for origin, chain in self._chains.items()}
