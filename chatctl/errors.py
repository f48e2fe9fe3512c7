"""What can go wrong talking to chatd's control socket: one ``ControlError`` family, each
error's ``str()`` one line fit for the user (see ``chatctl.client``)."""

from __future__ import annotations

import os
from pathlib import Path


class ControlError(Exception):
    """Talking to chatd failed; ``str(exc)`` is one line for the user."""


class NoDaemon(ControlError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"no chatd at {path} (is it running?)")
        self.path = path


class PermissionDenied(ControlError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"permission denied on {path}: uid {os.getuid()} may not open it (chatd lets in"
            " root, its own user and those given by --control-uid/--control-gid; is it your"
            " chatd's --socket path?)"
        )
        self.path = path


class Timeout(ControlError):
    pass


class ConnectionLost(ControlError):
    pass


class ProtocolError(ControlError):
    pass


class RemoteError(ControlError):
    """chatd refused the request; ``code`` is one of ``chat.wire.ERROR_CODES``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
