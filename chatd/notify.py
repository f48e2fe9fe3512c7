"""systemd's readiness protocol (sd_notify(3)): one datagram to ``$NOTIFY_SOCKET``.

The protocol is a single ``AF_UNIX``/``SOCK_DGRAM`` send of ``KEY=VALUE`` lines, so it is
done here rather than through a dependency. Outside systemd the variable is unset and every
call is a cheap no-op.
"""

from __future__ import annotations

import os
import socket


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
