"""What an operator meets when starting chatd wrong, against real processes: one line on
stderr and an exit status of its own (``chatd.exits``), never a traceback or a node that
runs on uselessly."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chatd.exits import EXIT_LISTEN
from tests.e2e.harness import Cluster

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
