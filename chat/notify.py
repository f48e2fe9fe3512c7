"""systemd's notification protocol (sd_notify(3)): ``KEY=VALUE`` datagrams to ``$NOTIFY_SOCKET``.

The protocol is a single ``AF_UNIX``/``SOCK_DGRAM`` send of ``KEY=VALUE`` lines, so it is
done here rather than through a dependency. Outside systemd the variable is unset and every
call is a cheap no-op.

Besides ``READY=1`` and ``STOPPING=1`` (sent by the daemons themselves), a service run by
systemd gets two tasks from ``start_service_tasks``: watchdog pings (``WATCHDOG=1`` at half
of ``WatchdogSec=``) and ``STATUS=`` lines (what ``systemctl status`` shows), both sent from
the trio loop so that a loop that hangs stops pinging and systemd restarts the service.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import NoReturn

import trio

# How often the status text is recomputed; it is sent only when it changed.
STATUS_POLL = 0.5


def sd_notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``, ``"STOPPING=1"``) to the service manager.

    Returns True once the datagram is sent; False when ``$NOTIFY_SOCKET`` is unset, is not
    a Unix socket address (a path, or ``@name`` for the abstract namespace), or the send
    fails. Never raises for those: a missed notification is systemd's timeout to report,
    not a reason to stop serving. Synchronous: a datagram to a local socket does not block.
    """
    target = os.environ.get("NOTIFY_SOCKET", "")
    if target.startswith("@"):
        address = "\0" + target[1:]
    elif target.startswith("/"):
        address = target
    else:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """``WatchdogSec=`` in seconds if systemd expects this process to ping, else None.

    systemd sets ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (the main process); a child that
    inherited them (another pid) must not ping on the service's behalf.
    """
    env = os.environ if environ is None else environ
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def status_line(text: str) -> str:
    """``STATUS=text`` on one line: a newline would start another assignment."""
    return "STATUS=" + " ".join(text.split())


async def feed_watchdog(interval: float) -> NoReturn:
    """``WATCHDOG=1`` every ``interval / 2`` (sd_watchdog_enabled(3) advises half), forever."""
    while True:
        sd_notify("WATCHDOG=1")
        await trio.sleep(interval / 2)


async def report_status(describe: Callable[[], str], poll: float = STATUS_POLL) -> NoReturn:
    """Send ``STATUS=`` whenever ``describe()`` changes (checked every ``poll`` seconds).

    A send that fails is tried again at the next poll rather than taken as done.
    """
    sent: str | None = None
    while True:
        line = status_line(describe())
        if line != sent and sd_notify(line):
            sent = line
        await trio.sleep(poll)


def start_service_tasks(nursery: trio.Nursery, describe: Callable[[], str]) -> None:
    """Under systemd (``$NOTIFY_SOCKET`` set), start the watchdog pings if ``WatchdogSec=``
    asks for them and the status reports; elsewhere, nothing."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    interval = watchdog_interval()
    if interval is not None:
        nursery.start_soon(feed_watchdog, interval)
    nursery.start_soon(report_status, describe)


@asynccontextmanager
async def service_tasks(describe: Callable[[], str]) -> AsyncIterator[None]:
    """``start_service_tasks`` for the body of a ``with`` block: the tasks stop at its end."""
    async with trio.open_nursery() as nursery:
        start_service_tasks(nursery, describe)
        yield
        nursery.cancel_scope.cancel()
