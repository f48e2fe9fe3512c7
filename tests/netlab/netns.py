"""Hosts made of Linux network namespaces, for multi-host tests (``make test-hosts``,
``make test-nat``).

Each host is a namespace with one interface, ``eth0``, and a private address, plugged into
a bridge that lives in a namespace of its own (a "switch", or a home router's LAN), so the
machine's own network namespace gains nothing: no interface, no address, no route, nothing
to clash with. A host's link can be taken down and up again (a partition, or a host that
vanishes without a FIN). ``Namespaces`` makes and removes them; ``Network`` is one switch
with hosts on it; ``tests.nat.topology`` builds routers and home networks from the same
parts.

Namespace names carry the test process's pid, so concurrent runs do not collide and the
leftovers of a run that was killed (its pid gone) are removed by the next one, its working
directory (``workdir``) too. ``close`` kills every process still in a namespace, then
deletes every namespace, on any exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Self

PREFIX = "chathosts-"
SWITCH = "sw"


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no ``ip``), or None if they can."""
    if os.geteuid() != 0:
        return "needs root (ip netns); run as root, e.g. sudo make test-hosts"
    if shutil.which("ip") is None:
        return "needs ip (Debian package iproute2)"
    # Listing is not enough (a container may forbid making one): make one and delete it.
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if made.returncode != 0:
        return f"ip netns is unavailable here: {made.stderr.strip()}"
    return None


def workdir() -> tempfile.TemporaryDirectory[str]:
    """A temporary directory for this run's hosts, named so ``remove_stale`` finds it."""
    return tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-")


def ip(*args: str) -> str:
    """Run ``ip ARGS``; its stdout, or an AssertionError with its stderr."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()]


def pids_in(namespace: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
    return [int(pid) for pid in done.stdout.split()]


def kill_all_in(namespace: str) -> list[int]:
    """SIGKILL every process in ``namespace``; the pids killed."""
    pids = pids_in(namespace)
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def gone(name: str) -> bool:
    """Whether ``name`` (PREFIX + pid + "-" + ...) belongs to a run whose process is gone."""
    owner = name.removeprefix(PREFIX).split("-", 1)[0]
    return name.startswith(PREFIX) and owner.isdigit() and not Path(f"/proc/{owner}").exists()


def remove_stale() -> None:
    """Remove what earlier runs killed before their cleanup left: namespaces (their
    processes killed first) and working directories in the temporary directory."""
    for name in namespaces():
        if gone(name):
            kill_all_in(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        if gone(path.name):
            shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Host:
    """One host: its namespace, its address, and its port on a bridge (the bridge side of
    its veth pair, in namespace ``bridge_ns``)."""

    name: str
    namespace: str
    address: str
    port: str
    bridge_ns: str

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run on this host (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace, *command]

    def pids(self) -> list[int]:
        return pids_in(self.namespace)


class Namespaces:
    """Namespaces named ``chathosts-PID-NAME``, hosts plugged into bridges; ``close``
    kills what runs in them and deletes them all (in reverse order of making)."""

    def __init__(self) -> None:
        remove_stale()
        self.tag = f"{PREFIX}{os.getpid()}-"
        self.hosts: dict[str, Host] = {}
        self.killed: list[int] = []  # by close: what still ran in a namespace
        self._made: list[str] = []
        self._ports = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add_namespace(self, name: str) -> str:
        """A namespace (its loopback up); its full name."""
        namespace = self.tag + name
        ip("netns", "add", namespace)
        self._made.append(namespace)
        ip("-n", namespace, "link", "set", "lo", "up")
        return namespace

    def add_bridge(self, namespace: str, bridge: str = "br0") -> None:
        ip("-n", namespace, "link", "add", bridge, "type", "bridge")
        ip("-n", namespace, "link", "set", bridge, "up")

    def plug(self, namespace: str, interface: str, bridge_ns: str, bridge: str = "br0") -> str:
        """A veth pair: ``interface`` in ``namespace``, its other end a port of ``bridge``
        in ``bridge_ns``; both up. The port's name."""
        port = f"p{self._ports}"
        self._ports += 1
        ip("-n", bridge_ns, "link", "add", port, "type", "veth",
           "peer", "name", interface, "netns", namespace)  # fmt: skip
        ip("-n", bridge_ns, "link", "set", port, "master", bridge, "up")
        ip("-n", namespace, "link", "set", interface, "up")
        return port

    def add_host(
        self, name: str, address: str, bridge_ns: str, prefix_len: int = 24, gateway: str = ""
    ) -> Host:
        """A host ``name`` with ``address`` on ``eth0``, plugged into ``bridge_ns``'s bridge;
        its default route via ``gateway`` when given."""
        namespace = self.add_namespace(name)
        port = self.plug(namespace, "eth0", bridge_ns)
        ip("-n", namespace, "addr", "add", f"{address}/{prefix_len}", "dev", "eth0")
        if gateway:
            ip("-n", namespace, "route", "add", "default", "via", gateway)
        host = Host(name, namespace, address, port, bridge_ns)
        self.hosts[name] = host
        return host

    def link(self, name: str, up: bool) -> None:
        """Take a host's link down (it and the others stop hearing each other) or up."""
        host = self.hosts[name]
        ip("-n", host.bridge_ns, "link", "set", host.port, "up" if up else "down")

    def close(self) -> None:
        """Kill every process in every namespace, then delete every namespace made."""
        for namespace in reversed(self._made):
            self.killed += kill_all_in(namespace)
        for namespace in reversed(self._made):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self._made.clear()


class Network(Namespaces):
    """A switch and ``hosts`` (name -> address in ``subnet``), torn down on ``close``."""

    def __init__(self, hosts: dict[str, str], prefix_len: int = 24) -> None:
        super().__init__()
        try:
            self.switch = self.add_namespace(SWITCH)
            self.add_bridge(self.switch)
            for name, address in hosts.items():
                self.add_host(name, address, self.switch, prefix_len)
        except BaseException:
            self.close()
            raise
