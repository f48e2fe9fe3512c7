"""Who may use the control socket: root, the daemon's own uid, and the operators given by
``--control-uid`` and ``--control-gid``. The peer's credentials come from ``SO_PEERCRED``;
its supplementary groups from ``/proc/PID/status``."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from attrs import frozen


@frozen
class ControlAccess:
    """Who may use the control socket, besides root (who may always)."""

    owner: int  # the daemon's own uid
    uids: frozenset[int] = frozenset()  # --control-uid
    gids: frozenset[int] = frozenset()  # --control-gid: a peer's primary or supplementary group

    @property
    def shared(self) -> bool:
        """Whether anyone but root and the owner may connect."""
        return bool(self.uids or self.gids)

    def allowed(self) -> str:
        """The rule, as said to a refused client: "root, uid 1000 and members of gid 50"."""
        who = ["root"] + ([f"uid {self.owner} (chatd's own)"] if self.owner != 0 else [])
        who += [f"uid {uid}" for uid in sorted(self.uids)]
        who += [f"members of gid {gid}" for gid in sorted(self.gids)]
        return ", ".join(who[:-1]) + " and " + who[-1]

    def refusal(self, uid: int, gid: int, groups: Callable[[], frozenset[int]]) -> str | None:
        """Why a peer with ``uid`` and primary ``gid`` is refused, or None if it is let in.
        ``groups`` gives its supplementary groups (read only when a group could decide)."""
        if uid in (0, self.owner) or uid in self.uids or gid in self.gids:
            return None
        if self.gids and self.gids & groups():
            return None
        return f"only {self.allowed()} may use it"


def supplementary_groups(pid: int) -> frozenset[int]:
    """The supplementary groups of process ``pid`` (the ``Groups:`` line of
    ``/proc/PID/status``); empty if that cannot be read (the process is gone, or /proc
    hides other users' processes, as systemd's ``ProtectProc=invisible`` does)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for row in status:
                if row.startswith("Groups:"):
                    return frozenset(int(g) for g in row.split()[1:])
    except (OSError, ValueError):
        pass
    return frozenset()


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """The connecting process's (pid, uid, gid), as the kernel saw it at ``connect``."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return int(pid), int(uid), int(gid)
