"""The control socket's file: its directory, a stale socket left behind, and the error
that stops chatd when the socket cannot be set up."""

from __future__ import annotations

import socket
from pathlib import Path

from chat.exits import EXIT_FAILURE, Fatal


class ControlSocketError(Fatal):
    """The control socket cannot be set up; the message says why, for the operator."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_FAILURE, message)


def prepare_socket_path(path: Path, explicit: bool, shared: bool = False) -> None:
    """Make the socket's directory (default locations only) and clear a stale socket file.

    A directory made for a ``shared`` socket may be searched by anyone (0711), so that
    operators reach the socket; its mode and the credential check decide the rest."""
    if not path.parent.is_dir():
        if explicit:
            raise ControlSocketError(
                f"cannot create control socket {path}: no directory {path.parent}"
            )
        path.parent.mkdir(mode=0o711 if shared else 0o700, parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # left by a node that did not stop cleanly
        else:
            raise ControlSocketError(f"another chatd is already listening on {path}")
        finally:
            probe.close()
