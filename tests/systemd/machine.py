"""A Debian tree booted with ``systemd-nspawn -b``: a real systemd as PID 1 to run units in.

The tree is booted with ``--volatile=overlay`` (every write goes to a tmpfs, so the cached
tree stays as built) and ``--private-network`` (its own loopback: its ports cannot clash
with anything on the machine). Commands run inside with ``nsenter`` into all of the
container's namespaces, with a clean environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

# Journals saved after a failure (the container and its journal are gone once it stops).
KEPT_JOURNALS: list[str] = []

PATH = "/opt/chat/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = 90.0


class Machine:
    """One booted container; ``run`` executes a command inside it as root."""

    def __init__(self, root: Path, binds: Sequence[tuple[Path, str]], log: IO[str]) -> None:
        argv = [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--boot",
            "--volatile=overlay",
            "--private-network",
            "--machine=chat-systemd-test",
            f"--directory={root}",
            *(f"--bind-ro={source}:{target}" for source, target in binds),
        ]
        self.log = log
        self.nspawn = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        self.pid = wait_until(self._init_pid, BOOT_TIMEOUT, "the container's systemd to start")

    def _init_pid(self) -> int | None:
        """The container's systemd: a child of nspawn, running systemd, in a PID namespace
        of its own. All three are checked, as nspawn's other, short-lived children share
        this machine's namespaces, and a command entered there would run on the host."""
        if self.nspawn.poll() is not None:
            raise GaveUp(f"systemd-nspawn exited {self.nspawn.returncode} (see its log)")
        ours = os.readlink("/proc/self/ns/pid")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) != self.nspawn.pid:
                    continue
                comm = (entry / "comm").read_text().strip()
                namespace = os.readlink(entry / "ns" / "pid")
            except OSError:
                continue
            if comm == "systemd" and namespace != ours:
                return int(entry.name)
        return None

    def run(
        self, *argv: str, timeout: float = 60.0, user: str | None = None, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the container (as ``user`` through runuser, else root)."""
        if user is not None:
            argv = ("runuser", "-u", user, "--", *argv)
        done = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-a", "env", "-i", f"PATH={PATH}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def out(self, *argv: str, timeout: float = 60.0) -> str:
        """The stdout of ``argv``, which must exit 0."""
        return self.run(*argv, timeout=timeout, check=True).stdout

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show -p ...`` of one unit as a dict."""
        text = self.out("systemctl", "show", unit, *(f"--property={p}" for p in props))
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def journal(self, unit: str, lines: int = 40) -> str:
        return self.run(
            "journalctl", "--no-pager", "-o", "cat", "-n", str(lines), "-u", unit
        ).stdout

    def shutdown(self, timeout: float = 30.0) -> int | None:
        """Power off (SIGTERM to nspawn halts the container cleanly), then kill if stuck."""
        if self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)
            try:
                self.nspawn.wait(timeout)
            except subprocess.TimeoutExpired:
                self.nspawn.kill()
                self.nspawn.wait()
        return self.nspawn.returncode


class GaveUp(AssertionError):
    """Raised by a ``wait_until`` predicate: waiting longer cannot help."""


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last = "never evaluated"
    while True:
        try:
            value = predicate()
        except GaveUp:
            raise
        except (AssertionError, OSError, subprocess.SubprocessError, ValueError) as exc:
            last = f"last error: {type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = f"last value: {value!r}"[:500]
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} ({last})")
        time.sleep(0.2)


def is_root() -> bool:
    return os.geteuid() == 0
