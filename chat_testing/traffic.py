"""Steady traffic through real nodes: a message per node every ``interval`` seconds over a
control-socket connection each keeps open, recording every answer and when it came.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

from chat_testing.control import ControlClient
from chat_testing.processes import Node


@dataclass
class Sent:
    """One send of a ``Traffic`` run: what the node answered, and when (host monotonic)."""

    node: str
    text: str
    at: float
    id: str | None = None  # the message id, when the node acknowledged the send
    error: str | None = None  # else the error code or exception


class Traffic:
    """Every ``interval`` seconds, a message through each of ``nodes``, recording each answer.

    One thread and one open ``ControlClient`` per node; every thread stops on ``stop()`` or
    at the latest after ``limit`` seconds. Use as a context manager: it stops on exit.
    """

    def __init__(
        self, nodes: Sequence[Node], interval: float, marker: str, limit: float = 60.0
    ) -> None:
        self.nodes = list(nodes)
        self.interval = interval
        self.marker = marker
        self.limit = limit
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._sent: list[Sent] = []
        self._threads = [
            threading.Thread(target=self._run, args=(node,), daemon=True) for node in self.nodes
        ]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, node: Node) -> None:
        deadline = time.monotonic() + self.limit
        client: ControlClient | None = None
        number = 0
        try:
            while time.monotonic() < deadline and not self._halt.is_set():
                number += 1
                text = f"{self.marker} {node.name} #{number}"
                record = Sent(node.name, text, 0.0)
                try:
                    if client is None:
                        client = ControlClient(node.socket, timeout=5.0)
                    answer = client.request("send", text=text)
                except (OSError, ValueError) as exc:
                    record.error = f"{type(exc).__name__}: {exc}"
                    if client is not None:
                        client.close()
                        client = None
                else:
                    if answer.get("ok"):
                        record.id = str(answer["message"]["id"])
                    else:
                        record.error = str(answer.get("error", {}).get("code", answer))
                record.at = time.monotonic()
                with self._lock:
                    self._sent.append(record)
                self._halt.wait(self.interval)
        finally:
            if client is not None:
                client.close()

    def stop(self, timeout: float = 10.0) -> list[Sent]:
        """Stop every sender (waiting for the send in flight); every send made."""
        self._halt.set()
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(timeout)
        return self.sent

    @property
    def sent(self) -> list[Sent]:
        with self._lock:
            return list(self._sent)

    def acked(self, nodes: Sequence[Node] | None = None) -> dict[str, Sent]:
        """The acknowledged sends (through ``nodes``, default all), by message id."""
        names = None if nodes is None else {n.name for n in nodes}
        return {
            s.id: s for s in self.sent if s.id is not None and (names is None or s.node in names)
        }
