"""Running podman from the container tests: one call per command, its output kept for the
failure message, and a wait for a condition with a deadline (never a fixed sleep)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

IMAGE = os.environ.get("CHAT_IMAGE", "localhost/chat:latest")
# What `podman run` needs on hosts that cannot set podman's default limits (root may not
# raise a hard limit there) and where crun fails on the cgroup layout (deploy/README.md).
RESTRICTED_HOST = [
    "--runtime",
    "runc",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
]
UID = 10001  # the image's user


class PodmanError(AssertionError):
    pass


def podman(
    *args: str,
    check: bool = True,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
    )
    if check and proc.returncode != 0:
        raise PodmanError(
            f"podman {' '.join(args)} exited {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def chatctl(container: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return podman("exec", container, "chatctl", *args, check=check)


def status(container: str) -> dict[str, Any] | None:
    """The node's ``status --json``, or None while it does not answer."""
    proc = chatctl(container, "status", "--json", check=False)
    if proc.returncode != 0:
        return None
    parsed: dict[str, Any] = json.loads(proc.stdout)
    return parsed


def history(container: str) -> list[dict[str, Any]]:
    out = chatctl(container, "history", "--json").stdout
    return [json.loads(line) for line in out.splitlines()]


def inspect(name: str, template: str) -> str:
    return podman("inspect", "--format", template, name).stdout.strip()


def wait_for(
    what: str, get: Callable[[], T | None], deadline: float = 60, logs: Sequence[str] = ()
) -> T:
    """Poll ``get`` until it returns something other than None or False; fail with
    ``what`` (and the end of the ``logs`` of these containers) after ``deadline`` s."""
    end = time.monotonic() + deadline
    while True:
        value = get()
        if value is not None and value is not False:
            return value
        if time.monotonic() > end:
            tails = "".join(f"\n--- {name}:\n{log_tail(name)}" for name in logs)
            raise AssertionError(f"not within {deadline:g} s: {what}{tails}")
        time.sleep(0.2)  # the poll interval of a wait with a deadline, not a synchronisation


def log_tail(container: str, lines: int = 20) -> str:
    proc = podman("logs", "--tail", str(lines), container, check=False)
    return proc.stdout + proc.stderr


def joined(container: str, members: int) -> Callable[[], dict[str, Any] | None]:
    """A condition: the node is in the discussion with ``members`` members."""

    def check() -> dict[str, Any] | None:
        current = status(container)
        if current is None or current["role"] not in {"member", "coordinator"}:
            return None
        return current if len(current["members"]) == members else None

    return check


def delivered(container: str, text: str) -> Callable[[], list[dict[str, Any]] | None]:
    """A condition: the node has delivered a message with this text (the matches)."""

    def check() -> list[dict[str, Any]] | None:
        return [m for m in history(container) if m["message"] == text] or None

    return check


def health(container: str) -> tuple[int, str]:
    """Run the container's health check now (`podman healthcheck run`): its exit status, and
    the health status podman records after it."""
    proc = podman("healthcheck", "run", container, check=False)
    return proc.returncode, inspect(container, "{{.State.Health.Status}}")


def last_health_output(container: str) -> str:
    log: Sequence[dict[str, Any]] = json.loads(inspect(container, "{{json .State.Health.Log}}"))
    return str(log[-1]["Output"]) if log else ""
