"""Hosts made of Linux network namespaces, joined by one bridge, for multi-host tests.

Each host is a namespace with one interface, ``eth0``, and a private address; the bridge
lives in a namespace of its own (the "switch"), so the machine's own network namespace
gains nothing: no interface, no address, no route, nothing to clash with. A host's link
can be taken down and up again (a partition, or a host that vanishes without a FIN).

Namespace names carry the test process's pid, so concurrent runs do not collide and the
leftovers of a run that was killed (its pid gone) are removed by the next one, its working
directory (``workdir``) too. ``close``
kills every process still in a host, then deletes every namespace, on any exit.
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
    """One host: its namespace, its address on the bridge, its switch port."""

    name: str
    namespace: str
    address: str
    port: str  # the bridge side of its veth pair, in the switch namespace

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run on this host (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace, *command]

    def pids(self) -> list[int]:
        return pids_in(self.namespace)


class Network:
    """A bridge and ``hosts`` (name -> address in ``subnet``), torn down on ``close``."""

    def __init__(self, hosts: dict[str, str], prefix_len: int = 24) -> None:
        remove_stale()
        self.tag = f"{PREFIX}{os.getpid()}-"
        self.switch = self.tag + SWITCH
        self.hosts: dict[str, Host] = {}
        self.killed: list[int] = []  # by close: what still ran in a host
        self._made: list[str] = []
        try:
            self._add_namespace(self.switch)
            ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            ip("-n", self.switch, "link", "set", "br0", "up")
            for index, (name, address) in enumerate(hosts.items()):
                self._add_host(Host(name, self.tag + name, address, f"p{index}"), prefix_len)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _add_namespace(self, namespace: str) -> None:
        ip("netns", "add", namespace)
        self._made.append(namespace)
        ip("-n", namespace, "link", "set", "lo", "up")

    def _add_host(self, host: Host, prefix_len: int) -> None:
        self._add_namespace(host.namespace)
        ip("-n", self.switch, "link", "add", host.port, "type", "veth",
           "peer", "name", "eth0", "netns", host.namespace)  # fmt: skip
        ip("-n", self.switch, "link", "set", host.port, "master", "br0", "up")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/{prefix_len}", "dev", "eth0")
        ip("-n", host.namespace, "link", "set", "eth0", "up")
        self.hosts[host.name] = host

    def link(self, name: str, up: bool) -> None:
        """Take a host's link down (it and the others stop hearing each other) or up."""
        ip("-n", self.switch, "link", "set", self.hosts[name].port, "up" if up else "down")

    def close(self) -> None:
        """Kill every process in every host, then delete every namespace made."""
        for namespace in reversed(self._made):
            self.killed += kill_all_in(namespace)
        for namespace in reversed(self._made):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self._made.clear()
