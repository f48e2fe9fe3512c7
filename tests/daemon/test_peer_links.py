"""What the shell does with the core's ``Dial`` and ``Undial`` (chatd.peer_links), under a
virtual clock: a wanted peer is dialed again and again with backoff, an unwanted one is
no longer dialed, and a new address replaces the old one."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, cast

import trio
import trio.testing

from chatd.config import LAN
from chatd.peer_links import PeerLinks
from chatd.runtime import Runtime
from chatd.transport import Channel, ConnectError, Transport


class Refusing:
    """A transport whose every dial is refused; it notes the addresses tried."""

    def __init__(self) -> None:
        self.tried: list[str] = []
        self.attempted = trio.Event()  # set at each attempt, then replaced

    async def until(self, condition: Callable[[], bool]) -> None:
        with trio.fail_after(60):
            while not condition():
                await self.attempted.wait()

    @asynccontextmanager
    async def open_channel(self, address: str, peer: str | None = None) -> AsyncIterator[Channel]:
        self.tried.append(address)
        self.attempted.set()
        self.attempted = trio.Event()
        raise ConnectError(f"connection refused by {address}", reason="connection refused")
        yield  # pragma: no cover


class Quiet:
    def warning(self, event: str, **fields: object) -> None:
        pass


class Shell:
    """What ``Links`` needs of the runtime when no dial ever succeeds."""

    config = LAN
    log = Quiet()

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery

    def spawn(self, fn: Callable[..., Coroutine[Any, Any, object]], *args: object) -> None:
        self._nursery.start_soon(fn, *args)


def links_over(nursery: trio.Nursery, transport: Refusing) -> PeerLinks:
    runtime = cast(Runtime, Shell(nursery))
    return PeerLinks(runtime, cast(Transport, transport), random.Random(1))


async def test_a_wanted_peer_is_dialed_until_undialed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = Refusing()
    async with trio.open_nursery() as nursery:
        links = links_over(nursery, transport)
        links.dial("bob", "ws://10.0.0.2:1")
        links.reconcile()
        await transport.until(lambda: len(transport.tried) >= 3)  # retried after each refusal
        links.undial("bob")
        links.reconcile()
        tried = len(transport.tried)
        await trio.sleep(10 * LAN.dial_backoff_max)
        assert len(transport.tried) == tried  # called off at once
        nursery.cancel_scope.cancel()


async def test_a_new_address_replaces_the_old_one(autojump_clock: trio.testing.MockClock) -> None:
    transport = Refusing()
    async with trio.open_nursery() as nursery:
        links = links_over(nursery, transport)
        links.dial("bob", "ws://10.0.0.2:1")
        links.reconcile()
        await transport.until(lambda: len(transport.tried) >= 1)
        links.dial("bob", "ws://10.0.0.3:1")
        links.reconcile()
        await transport.until(lambda: transport.tried[-1] == "ws://10.0.0.3:1")
        switched = transport.tried.index("ws://10.0.0.3:1")
        await transport.until(lambda: len(transport.tried) >= switched + 3)
        assert set(transport.tried[switched:]) == {"ws://10.0.0.3:1"}
        nursery.cancel_scope.cancel()


def test_dialing_twice_starts_one_dialer() -> None:
    async def main() -> None:
        transport = Refusing()
        async with trio.open_nursery() as nursery:
            links = links_over(nursery, transport)
            links.dial("bob", "ws://10.0.0.2:1")
            links.reconcile()
            links.dial("bob", "ws://10.0.0.2:1")
            links.reconcile()
            await transport.until(lambda: len(transport.tried) >= 1)
            await trio.testing.wait_all_tasks_blocked()
            assert transport.tried == ["ws://10.0.0.2:1"]  # one attempt, then its backoff
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(rate=0))
