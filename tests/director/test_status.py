"""The one-line states the daemons report to systemd (STATUS=, `systemctl status`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from chat.wire import CoordinatorRecord, NodeRegistration
from chatd.core.effects import Role
from chatd.daemon import node_status
from chatd.runtime import Runtime
from director.__main__ import director_status
from director.app import DirectorApp
from director.registry import Registry

A = CoordinatorRecord(
    node_id="9e33984461633d2ac4397f7489c4e11e",
    address="wss://127.0.0.1:8701",
    public_address="wss://192.0.2.10:8701",
    term=3,
)


def app_at(registry: Registry, now: list[float]) -> DirectorApp:
    return DirectorApp(registry, None, clock=lambda: now[0])


def test_registry_current_changes_nothing() -> None:
    registry = Registry(ttl=30)
    registry.register_coordinator(A, now=0)
    assert registry.current(30) == A
    assert registry.current(31) is None  # as expire(31) would forget it ...
    assert registry.coordinator() == A  # ... but it is still held
    assert Registry(ttl=None).current(1e9) is None


def test_director_status() -> None:
    now = [0.0]
    registry = Registry(ttl=30)
    app = app_at(registry, now)
    assert director_status(app) == "no coordinator, highest term 0"
    registration = NodeRegistration(A.node_id, A.address, A.public_address)
    registry.register_node(registration, now=0)
    assert director_status(app) == "starting 9e339844 at wss://192.0.2.10:8701, term 1"
    registry.register_coordinator(A, now=0)
    assert director_status(app) == "coordinator 9e339844 at wss://192.0.2.10:8701, term 3"
    now[0] = 31  # silent past the ttl: not shown as the coordinator any more
    assert director_status(app) == "no coordinator, highest term 3"


def fake_runtime(role: Role, members: int, term: int, error: str | None) -> Runtime:
    snapshot = SimpleNamespace(
        name="alice", role=role, members=tuple(f"n{i}" for i in range(members)), term=term
    )
    node = SimpleNamespace(snapshot=lambda: snapshot)
    return cast(Runtime, SimpleNamespace(node=node, director_error=error))


def test_node_status() -> None:
    joining = fake_runtime(Role.JOINING, 0, 0, None)
    assert node_status(joining) == "alice: joining, 0 members, term 0"
    assert (
        node_status(fake_runtime(Role.COORDINATOR, 1, 1, None))
        == "alice: coordinator, 1 member, term 1"
    )
    assert (
        node_status(fake_runtime(Role.MEMBER, 3, 7, "cannot reach http://d:8700: refused"))
        == "alice: member, 3 members, term 7; director: cannot reach http://d:8700: refused"
    )
