"""What the multi-host tests wait for and check, through ``chatctl`` on each host; and the
fixture's guarantee that nothing outlives a test."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chat_testing.process import Process
from chat_testing.waiting import wait_until
from tests.netlab.lab import Lab
from tests.netlab.netns import Namespaces, namespaces, unavailable, workdir

WAIT = 30.0  # every wait on a condition; a 2-core machine with other work on it


@contextmanager
def lab_on(make: Callable[[], Namespaces]) -> Iterator[Lab]:
    """A ``Lab`` on the namespaces ``make`` builds (skipped where namespaces cannot be
    made); on exit, pass or fail, every process killed and every namespace gone."""
    if why_not := unavailable():
        pytest.skip(f"multi-host tests: {why_not}")
    with workdir() as tmp:
        with make() as network, Lab(network, Path(tmp)) as made:
            yield made
            started = [p.pid for p in made.processes]
        pids = [*started, *network.killed]
        wait_until(lambda: not [p for p in pids if running(p)], WAIT, "the test's processes to go")
        assert not [n for n in namespaces() if n.startswith(network.tag)], "a namespace outlived it"


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def ready_id(node: Process) -> str:
    return str(node.wait_event("node.ready", WAIT)["node-id"])


def agreed(lab: Lab, names: Sequence[str], ids: dict[str, str]) -> str | None:
    """The coordinator, once every host in ``names`` has exactly them as members and
    names the same coordinator, one of them; else None."""
    want = {ids[name] for name in names}
    coordinators = set()
    for name in names:
        status = lab.status(name)
        if status["role"] not in ("coordinator", "member"):
            return None
        if {m["node-id"] for m in status["members"]} != want:
            return None
        coordinators.add(status["coordinator"])
    (coordinator,) = coordinators if len(coordinators) == 1 else (None,)
    return coordinator if coordinator in want else None


def history(lab: Lab, name: str) -> list[dict[str, Any]]:
    return lab.json_lines(name, "history")


def have(lab: Lab, names: Sequence[str], wanted: set[tuple[str, str]]) -> bool:
    """Whether every host in ``names`` delivered every (node-id, text) in ``wanted``."""
    return all(
        wanted <= {(m["node-id"], m["message"]) for m in history(lab, name)} for name in names
    )


def same_order(lab: Lab, names: Sequence[str]) -> list[str]:
    """The message ids, once every host in ``names`` lists them in one order."""
    orders = {name: [m["id"] for m in history(lab, name)] for name in names}
    first = orders[names[0]]
    assert all(order == first for order in orders.values()), orders
    return first


def host_of(ids: dict[str, str], node_id: str) -> str:
    (name,) = [name for name, nid in ids.items() if nid == node_id]
    return name
