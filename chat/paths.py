"""Where the control socket lives; chatd (to listen) and chatctl (to connect) agree here.

Order, first match wins (design.md, "Command-line contract"):

1. ``--socket PATH``;
2. ``$CHATD_SOCKET``;
3. ``$RUNTIME_DIRECTORY/control.sock`` (set by systemd's ``RuntimeDirectory=``; when it lists
   several directories separated by ``:``, the first one);
4. ``$XDG_RUNTIME_DIR/chatd/control.sock``;
5. ``/tmp/chatd-$UID/control.sock``.

An empty value counts as unset, as shells make it easy to export an empty variable by accident.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SOCKET_NAME = "control.sock"


def resolve_socket_path(explicit: str | None, environ: Mapping[str, str], uid: int) -> Path:
    """The control socket path for ``--socket`` value ``explicit``, an environment and a uid.

    Pure: reads nothing but its arguments and touches no file.
    """
    if explicit:
        return Path(explicit)
    if env_socket := environ.get("CHATD_SOCKET"):
        return Path(env_socket)
    if runtime := environ.get("RUNTIME_DIRECTORY", "").split(":")[0]:
        return Path(runtime) / SOCKET_NAME
    if xdg := environ.get("XDG_RUNTIME_DIR"):
        return Path(xdg) / "chatd" / SOCKET_NAME
    return Path(f"/tmp/chatd-{uid}") / SOCKET_NAME


def socket_path(explicit: str | None = None) -> Path:
    """``resolve_socket_path`` for this process: its environment and its real uid."""
    return resolve_socket_path(explicit, os.environ, os.getuid())
