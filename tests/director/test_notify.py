"""sd_notify against a real datagram socket, by path and in the abstract namespace."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from chat.notify import sd_notify


def test_unset_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False


def test_path_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sd_notify("READY=1") is True
        assert server.recv(100) == b"READY=1"


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"chat-notify-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify("STOPPING=1") is True
        assert server.recv(100) == b"STOPPING=1"


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:1234", "/nonexistent/notify"])
def test_unusable_target_is_false(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    assert sd_notify("READY=1") is False
