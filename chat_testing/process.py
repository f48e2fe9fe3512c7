"""One child process whose output lines are kept in memory, and how to stop it.

Background threads read the child's stdout and stderr line by line (so a pipe never fills
and a test can inspect the whole log); an optional ``on_line`` hook sees every line first
and may consume it (the benchmarks' delivery traces). Waits for a line or a JSON log event
have a deadline and give up early once the child has exited.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from chat_testing.waiting import DEFAULT_TIMEOUT, GaveUp, WaitTimeout, wait_until

T = TypeVar("T")
Event = dict[str, Any]
# Sees each raw output line (stdout and stderr) in a reader thread; True: consumed, not kept.
LineHook = Callable[[bytes], bool]


def binary(name: str) -> str:
    """The path of one of the project's console scripts, next to this interpreter first."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (pip install -e . in the virtualenv)")
    return found


def child_env() -> dict[str, str]:
    """The environment for a child: unbuffered, no service manager, no default socket."""
    env = dict(os.environ)
    for name in ("NOTIFY_SOCKET", "CHATD_SOCKET", "RUNTIME_DIRECTORY"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Process:
    """A child process whose output lines are all kept in memory (the last ``max_lines``
    of each stream when given). ``env=None`` inherits this process's environment;
    ``new_session`` keeps a terminal's Ctrl-C from reaching the child."""

    def __init__(
        self,
        label: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        on_line: LineHook | None = None,
        max_lines: int | None = None,
        new_session: bool = False,
    ) -> None:
        self.label = label
        self.argv = list(argv)
        self._lock = threading.Lock()
        self._on_line = on_line
        self._stdout: deque[str] = deque(maxlen=max_lines)
        self._stderr: deque[str] = deque(maxlen=max_lines)
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=new_session,
        )
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump, args=(stream, into), daemon=True)
            for stream, into in (
                (self.popen.stdout, self._stdout),
                (self.popen.stderr, self._stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    def _pump(self, stream: IO[bytes], into: deque[str]) -> None:
        with stream:
            for raw in stream:
                if self._on_line is not None and self._on_line(raw):
                    continue
                line = raw.decode("utf-8", "backslashreplace").rstrip("\n")
                with self._lock:
                    into.append(line)

    def __repr__(self) -> str:
        return f"<{self.label} pid={self.pid} rc={self.returncode}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def stdout_lines(self) -> list[str]:
        with self._lock:
            return list(self._stdout)

    @property
    def stderr_lines(self) -> list[str]:
        with self._lock:
            return list(self._stderr)

    def events(self) -> list[Event]:
        """Every stdout line as a JSON object; a line that is not one fails the test."""
        events: list[Event] = []
        for line in self.stdout_lines:
            try:
                event = json.loads(line)
            except ValueError:
                raise AssertionError(f"{self.label}: stdout line is not JSON: {line!r}") from None
            if not isinstance(event, dict):
                raise AssertionError(f"{self.label}: stdout line is not an object: {line!r}")
            events.append(event)
        return events

    def find_events(self, name: str, **fields: Any) -> list[Event]:
        """The log events called ``name`` whose fields include ``fields``."""
        return [
            e
            for e in self.events()
            if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
        ]

    def wait_event(self, name: str, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> Event:
        """The first log event ``name`` with ``fields``, waiting for it to appear."""
        what = f"log {name}" + (f" with {fields}" if fields else "")
        matches = self._wait(lambda: self.find_events(name, **fields), what, timeout)
        return matches[0]

    def wait_line(self, needle: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """The first kept stdout line containing ``needle`` (any line for ``""``)."""
        found = self._wait(
            lambda: [line for line in self.stdout_lines if needle in line],
            f"print a line with {needle!r}",
            timeout,
        )
        return found[0]

    def _wait(self, matches: Callable[[], list[T]], what: str, timeout: float) -> list[T]:
        def found() -> list[T] | None:
            got = matches()
            if got:
                return got
            if not self.alive and self._drained():
                raise GaveUp(
                    f"{self.label} exited ({self.returncode}) before it would {what}\n"
                    + self.describe()
                )
            return None

        try:
            return wait_until(found, timeout, f"{self.label} to {what}")
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{self.describe()}") from None

    def _drained(self) -> bool:
        return not any(reader.is_alive() for reader in self._readers)

    def wait_exit(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """The exit status, once the process has exited and its output is read."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(
                f"{self.label} did not exit within {timeout:g}s\n{self.describe()}"
            ) from None
        for reader in self._readers:
            reader.join(timeout)
        return code

    def signal(self, signum: int) -> None:
        if self.alive:
            self.popen.send_signal(signum)

    def kill(self) -> None:
        if self.alive:
            self.popen.kill()
        self.popen.wait()
        for reader in self._readers:
            reader.join(5)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; the exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.wait_exit(timeout)
        except WaitTimeout:
            self.kill()
            return self.popen.wait()

    def describe(self, lines: int = 15) -> str:
        """The tail of the process's output, for failure messages."""
        out = "\n    ".join(self.stdout_lines[-lines:])
        err = "\n    ".join(self.stderr_lines[-lines:])
        return f"--- {self!r}\n  stdout:\n    {out}\n  stderr:\n    {err}"


def stop(process: Process, timeout: float = DEFAULT_TIMEOUT) -> int:
    """SIGTERM, then the exit status; a process that does not exit in time is killed and
    the wait fails (``WaitTimeout``)."""
    process.signal(signal.SIGTERM)
    try:
        return process.wait_exit(timeout)
    except WaitTimeout:
        process.kill()
        raise


def pids_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (e.g. a test's tmp dir)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
