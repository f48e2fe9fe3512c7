"""What an operator meets when starting chatd wrong, against real processes: one line on
stderr and an exit status of its own (``chatd.exits``), never a traceback or a node that
runs on uselessly."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from chatd.exits import EXIT_LISTEN
from tests.e2e.harness import DEFAULT_TIMEOUT, Cluster, binary, child_env, status

pytestmark = pytest.mark.e2e

NO_DIRECTOR = "http://127.0.0.1:9"  # never reached: these nodes stop before asking


def test_a_port_in_use_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster, socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        node = cluster.spawn_node("late", NO_DIRECTOR, extra=["--port", str(port)])
        assert node.wait_exit() == EXIT_LISTEN
        assert node.stderr_lines == [
            f"chatd: cannot listen on 127.0.0.1:{port}: address already in use"
        ]
        (failed,) = node.find_events("node.listen_failed")
        assert failed["level"] == "error" and failed["port"] == port
        assert not node.socket.exists()


def test_a_host_of_another_machine_is_one_line_and_exit_3(tmp_path: Path) -> None:
    with Cluster(tmp_path) as cluster:
        # TEST-NET-1: an address of no interface here.
        node = cluster.spawn_node("astray", NO_DIRECTOR, extra=["--host", "192.0.2.1"])
        assert node.wait_exit() == EXIT_LISTEN
        assert node.stderr_lines == [
            "chatd: cannot listen on 192.0.2.1:0: cannot assign requested address"
        ]


# The control socket: who may use it -------------------------------------------------------

OPERATOR, STRANGER, OPERATORS_GROUP = 4242, 4343, 4500


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory other users can reach (pytest's tmp_path is in a root-only one)."""
    path = Path(tempfile.mkdtemp(prefix="chat-ops-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def chatctl_as(
    sock: Path, uid: int, gid: int, *args: str, groups: Sequence[int] = ()
) -> subprocess.CompletedProcess[str]:
    """The real chatctl, run as ``uid``:``gid`` with exactly the supplementary ``groups``
    (by setpriv: subprocess's own ``user=`` cannot exec the venv's interpreter here)."""
    ids = ["--reuid", str(uid), "--regid", str(gid)]
    ids += ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return subprocess.run(
        ["setpriv", *ids, binary("chatctl"), "--socket", str(sock), *args],
        capture_output=True,
        text=True,
        timeout=DEFAULT_TIMEOUT,
        env=child_env(),
        check=False,
    )


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv, to run clients as other users",
)
def test_root_the_owner_and_the_operators_given_may_use_the_socket(
    tmp_path: Path, shared_dir: Path
) -> None:
    with Cluster(tmp_path) as cluster:
        by_uid, by_gid, private = (
            cluster.spawn_node(name, NO_DIRECTOR, socket=shared_dir / f"{name}.sock", extra=extra)
            for name, extra in (
                ("by-uid", ["--control-uid", str(OPERATOR)]),
                ("by-gid", ["--control-gid", str(OPERATORS_GROUP)]),
                ("private", []),
            )
        )
        for node in (by_uid, by_gid, private):
            node.wait_ready()
            assert status(node.socket)["name"] == node.name  # root, always

        # --control-uid: that uid is let in; another one is refused by chatd, which says
        # which uid and why (the file is 0666: the credential check decides).
        assert stat.S_IMODE(by_uid.socket.stat().st_mode) == 0o666
        allowed = chatctl_as(by_uid.socket, OPERATOR, OPERATOR, "status", "--json")
        assert allowed.returncode == 0, allowed.stderr
        refused = chatctl_as(by_uid.socket, STRANGER, STRANGER, "status")
        assert refused.returncode == 15, refused  # 10 + forbidden
        assert refused.stderr == (
            f"chatctl: uid {STRANGER} may not use this chatd's socket: only root and uid"
            f" {OPERATOR} may use it (forbidden)\n"
        )
        logged = by_uid.wait_event("control.refused", uid=STRANGER)
        assert logged["gid"] == STRANGER and logged["pid"] > 0, logged
        assert logged["level"] == "warning"

        # --control-gid: the group's members get in, as their primary group or a
        # supplementary one (read from /proc); the file is 0660 in that group.
        info = by_gid.socket.stat()
        assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, OPERATORS_GROUP)
        primary = chatctl_as(by_gid.socket, STRANGER, OPERATORS_GROUP, "who")
        assert primary.returncode == 0, primary.stderr
        extra = chatctl_as(by_gid.socket, STRANGER, STRANGER, "who", groups=[OPERATORS_GROUP])
        assert extra.returncode == 0, extra.stderr
        outside = chatctl_as(by_gid.socket, STRANGER, STRANGER, "who")
        assert outside.returncode == 77, outside  # the file's mode: refused by the kernel
        assert f"uid {STRANGER} may not open it" in outside.stderr

        # No operators: 0600, and only root and chatd's own user get in.
        assert stat.S_IMODE(private.socket.stat().st_mode) == 0o600
        denied = chatctl_as(private.socket, OPERATOR, OPERATOR, "status")
        assert denied.returncode == 77, denied
        assert f"permission denied on {private.socket}: uid {OPERATOR}" in denied.stderr
