"""The import rules of the tree (issue 10), read from the source with ``ast``.

Packages depend downward only: ``chat`` is shared by the programs and imports none of
them; ``chatd``, ``chatctl`` and ``director`` never import each other; ``chat_testing``,
``tests`` and ``bench`` sit above them; ``bench`` never imports ``tests``. The sans-I/O
core (``chatd.core``) imports no I/O, clock, randomness or logging and, of the project,
only what it must. Every import counts, also one inside a function or ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOP = ("chat", "chat_testing", "chatd", "chatctl", "director", "bench", "tests")

# Package -> the packages it must not import (a name and everything under it).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "chat": ("chatd", "chatctl", "director", "chat_testing", "bench", "tests"),
    "chatd": ("chatctl", "director", "chat_testing", "bench", "tests"),
    "chatctl": ("chatd", "director", "chat_testing", "bench", "tests"),
    "director": ("chatd", "chatctl", "chat_testing", "bench", "tests"),
    "chat_testing": ("bench", "tests"),
    "bench": ("tests",),
}

CORE = "chatd.core"
# What the core must not touch: I/O, clocks, randomness, logging, concurrency.
CORE_FORBIDDEN = (
    "trio",
    "trio_websocket",
    "socket",
    "ssl",
    "time",
    "random",
    "secrets",
    "os",
    "logging",
    "structlog",
    "asyncio",
    "threading",
    "httpx",
    "hypercorn",
)
# The only modules of the project outside chatd.core that the core may use: the wire
# types it reads and writes, message signatures and ids, member names, and the timers and
# limits it is given (an attrs class of numbers).
CORE_MAY_USE = ("chat.wire", "chat.identity", "chat.names", "chatd.config")
FIRST_PARTY = TOP

# Violations the tree is allowed, as (module, what it imports: a module and all under it).
# Issue 10 emptied it; an entry that no longer matches an import fails the test.
ALLOWED: frozenset[tuple[str, str]] = frozenset()


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports; ``from a import b``
    gives ``a.b`` (b may be a module), relative imports made absolute."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            for alias in node.names:
                found.add(base if alias.name == "*" else f"{base}.{alias.name}")
    return found


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def core_may_not(name: str) -> bool:
    """Whether the core may not import ``name``."""
    if any(under(name, p) for p in CORE_FORBIDDEN):
        return True
    return (
        name.split(".")[0] in FIRST_PARTY
        and not under(name, CORE)
        and not any(under(name, p) for p in CORE_MAY_USE)
    )


def violations(modules: Mapping[str, Iterable[str]]) -> set[tuple[str, str]]:
    """(module, imported name) for every import that breaks a rule."""
    found: set[tuple[str, str]] = set()
    for module, imported in modules.items():
        forbidden = FORBIDDEN.get(module.split(".")[0], ())
        in_core = under(module, CORE)
        for name in imported:
            if any(under(name, p) for p in forbidden) or (in_core and core_may_not(name)):
                found.add((module, name))
    return found


def tree_modules() -> dict[str, set[str]]:
    modules: dict[str, set[str]] = {}
    for top in TOP:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            is_package = rel.name == "__init__"
            parts = rel.parts[:-1] if is_package else rel.parts
            name = ".".join(parts)
            modules[name] = imports_of(path.read_text(encoding="utf-8"), name, is_package)
    return modules


def allowed(violation: tuple[str, str]) -> bool:
    module, name = violation
    return any(module == m and under(name, prefix) for m, prefix in ALLOWED)


def test_the_tree_keeps_the_import_rules() -> None:
    modules = tree_modules()
    assert {"chat.wire", "chatd.core.node", "chatctl.client", "director.app"} <= set(modules)
    found = violations(modules)
    assert sorted(v for v in found if not allowed(v)) == []
    # The allow-list only shrinks: each entry must still match a real import.
    stale = [(m, p) for m, p in ALLOWED if not any(v[0] == m and under(v[1], p) for v in found)]
    assert stale == []


@pytest.mark.parametrize(
    ("module", "source", "flagged"),
    [
        ("chat.wire.codec", "from chatd.config import TEST", "chatd.config.TEST"),
        ("chat.log", "import chatctl.client", "chatctl.client"),
        ("chat.paths", "from director import registry", "director.registry"),
        ("chat.names", "def f():\n    from chat_testing import cluster", "chat_testing.cluster"),
        ("chatd.runtime", "from chatctl.render import message_line", "chatctl.render.message_line"),
        ("chatd.daemon", "import director.registry", "director.registry"),
        ("chatd.control", "from chat_testing.memory import X", "chat_testing.memory.X"),
        ("chatctl.client", "from chatd.config import LAN", "chatd.config.LAN"),
        ("chatctl.chat.app", "from director.app import make_app", "director.app.make_app"),
        ("director.app", "from chatd import runtime", "chatd.runtime"),
        ("director.serve", "import chatctl", "chatctl"),
        ("bench.s1_latency", "from tests.e2e.harness import Cluster", "tests.e2e.harness.Cluster"),
        ("chat_testing.cluster", "import tests.e2e.harness", "tests.e2e.harness"),
        ("bench.failover", "from tests.e2e import harness", "tests.e2e.harness"),
        ("chat_testing.processes", "from tests.hosts.lab import Lab", "tests.hosts.lab.Lab"),
        ("chatctl.client", "from chat_testing.control import send", "chat_testing.control.send"),
        ("director.app", "import chat_testing.process", "chat_testing.process"),
        ("chatd.core.node", "import trio", "trio"),
        ("chatd.core.node", "import time", "time"),
        ("chatd.core.state", "from os import urandom", "os.urandom"),
        ("chatd.core.node", "import structlog", "structlog"),
        ("chatd.core.history", "from logging import getLogger", "logging.getLogger"),
        ("chatd.core.node", "if TYPE_CHECKING:\n    import ssl", "ssl"),
        ("chatd.core.node", "from secrets import token_bytes", "secrets.token_bytes"),
        ("chatd.core.node", "from chatd.runtime import Runtime", "chatd.runtime.Runtime"),
        ("chatd.core.node", "from chat import log", "chat.log"),
        ("chatd.core.node", "from ..transport import Channel", "chatd.transport.Channel"),
    ],
)
def test_a_forbidden_import_is_flagged(module: str, source: str, flagged: str) -> None:
    imported = imports_of(source, module)
    assert flagged in imported
    assert (module, flagged) in violations({module: imported})


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("chatd.core.node", "from chat.wire import Message\nfrom chatd.core import effects"),
        ("chatd.core.node", "from chat import identity, names\nfrom chatd.config import Config"),
        ("chatd.core.node", "from . import effects\nimport hashlib\nimport attrs"),
        ("chatd.runtime", "import trio\nfrom chat.wire import encode\nfrom chatd.core import node"),
        ("chatctl.client", "from chat.wire import Status\nfrom chatctl import render"),
        ("director.app", "from chat.auth import Keyring\nimport hypercorn"),
        ("chat_testing.cluster", "from director.registry import Registry\nimport chatd.runtime"),
        ("tests.e2e.test_demo", "from chat_testing import demo\nimport chatctl.client"),
        ("bench.s7_scale", "from chat_testing.cluster import open_cluster"),
        ("bench.failover", "from chat_testing.processes import Cluster"),
        ("tests.e2e.test_failover", "from chat_testing.traffic import Traffic"),
    ],
)
def test_an_allowed_import_is_not_flagged(module: str, source: str) -> None:
    assert violations({module: imports_of(source, module)}) == set()
