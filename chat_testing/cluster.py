"""Whole clusters in one process: real ``Node`` + ``Runtime`` over the memory network.

The director is the real ``director.registry.Registry`` behind an in-memory API. Run under
``trio.testing.MockClock`` (pytest-trio's ``autojump_clock``) and every timer, backoff and
timeout is virtual: seconds of protocol time pass in milliseconds, reproducibly.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
import trio

from chat.auth import Keyring
from chat.identity import Identity
from chat.wire import CoordinatorRecord, JoinAdvice, MemberRecord, NodeRegistration, Unregistration
from chat_testing.memory import MemoryNetwork
from chatd.config import TEST, Config
from chatd.core.node import Node
from chatd.runtime import Runtime
from director.registry import Accepted, Registry


class DirectorDown(Exception):
    """The in-memory director is switched off."""


class MemoryDirector:
    def __init__(self) -> None:
        self.registry = Registry()
        self.up = True

    def _check(self) -> None:
        if not self.up:
            raise DirectorDown("director unreachable (switched off by the test)")

    async def register_node(self, registration: NodeRegistration) -> JoinAdvice:
        self._check()
        return self.registry.register_node(registration, trio.current_time())

    async def register_coordinator(self, record: CoordinatorRecord) -> CoordinatorRecord | None:
        self._check()
        outcome = self.registry.register_coordinator(record, trio.current_time())
        return None if isinstance(outcome, Accepted) else outcome.current

    async def unregister(self, unregistration: Unregistration) -> bool:
        self._check()
        return self.registry.unregister(unregistration)


DIRECTOR_ADDRESS = "mem://director"


class DirectorLink:
    """One node's view of the director: cut off when the route hook says so."""

    def __init__(self, director: MemoryDirector, network: MemoryNetwork, address: str) -> None:
        self.director = director
        self.network = network
        self.address = address

    def _check(self) -> None:
        if not self.network.reachable(self.address, DIRECTOR_ADDRESS):
            raise DirectorDown("director unreachable (partitioned by the test)")

    async def register_node(self, registration: NodeRegistration) -> JoinAdvice:
        self._check()
        return await self.director.register_node(registration)

    async def register_coordinator(self, record: CoordinatorRecord) -> CoordinatorRecord | None:
        self._check()
        return await self.director.register_coordinator(record)

    async def unregister(self, unregistration: Unregistration) -> bool:
        self._check()
        return await self.director.unregister(unregistration)


class ClusterNode:
    def __init__(self, runtime: Runtime, scope: trio.CancelScope) -> None:
        self.runtime = runtime
        self.scope = scope
        self.stopped = trio.Event()

    @property
    def node(self) -> Node:
        return self.runtime.node

    @property
    def history_ids(self) -> list[str]:
        return [m.id for m in self.node.messages()]


class Cluster:
    def __init__(
        self, nursery: trio.Nursery, seed: int, config: Config, secret: bytes | None
    ) -> None:
        self.nursery = nursery
        self.rng = random.Random(seed)
        self.config = config
        self.secret = secret
        self.network = MemoryNetwork()
        self.director = MemoryDirector()
        self.nodes: list[ClusterNode] = []

    @property
    def live(self) -> list[ClusterNode]:
        return [n for n in self.nodes if not n.stopped.is_set()]

    async def add(self, name: str, priority: int = 0, secret: bytes | None = None) -> ClusterNode:
        """Start a node; it asks the director and joins (or starts) the discussion."""
        ident = Identity.generate(self.rng.randbytes(32))
        address = f"mem://{name}"
        me = MemberRecord(ident.node_id, name, address, address, priority)
        rng = random.Random(self.rng.random())
        log = structlog.get_logger("chat").bind(**{"node-id": ident.node_id, "name": name})
        node = Node(me, ident, self.config)
        transport = self.network.transport(address, self.config.max_frame_bytes)
        runtime = Runtime(
            node,
            transport,
            DirectorLink(self.director, self.network, address),
            (DirectorDown,),
            Keyring.of(key) if (key := secret or self.secret) is not None else None,
            self.config,
            rng,
            log,
        )
        member = ClusterNode(runtime, trio.CancelScope())
        self.nodes.append(member)

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                with member.scope:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(transport.serve, runtime.serve_peers)
                        task_status.started()
                        await runtime.run()
                        nursery.cancel_scope.cancel()
            finally:
                member.stopped.set()

        await self.nursery.start(run)
        return member

    async def leave(self, member: ClusterNode) -> None:
        member.runtime.request_leave()
        await member.stopped.wait()

    def crash(self, member: ClusterNode) -> None:
        """Stop a node at once, telling nobody (as ``kill -9`` would)."""
        member.scope.cancel()

    async def wait_until(
        self, predicate: Callable[[], bool], what: str, within: float = 30.0
    ) -> None:
        """Wait (in virtual time) until ``predicate()``; fail naming ``what`` otherwise."""
        try:
            with trio.fail_after(within):
                # Polling in virtual time costs nothing and needs no hook in the code under test.
                while not predicate():  # noqa: ASYNC110
                    await trio.sleep(0.01)
        except trio.TooSlowError:
            raise AssertionError(f"timed out after {within} s waiting until {what}") from None

    async def wait_joined(self, *members: ClusterNode) -> None:
        await self.wait_until(lambda: all(m.node.ready for m in members), "all nodes joined")


@asynccontextmanager
async def open_cluster(
    seed: int = 0, config: Config = TEST, secret: bytes | None = b"test-group-secret-0123"
) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery, seed, config, secret)
        yield cluster
        nursery.cancel_scope.cancel()
