"""resolve_socket_path: every branch of the design's lookup order."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat.paths import resolve_socket_path

FULL = {
    "CHATD_SOCKET": "/env/chatd.sock",
    "RUNTIME_DIRECTORY": "/run/chatd",
    "XDG_RUNTIME_DIR": "/run/user/1000",
}


def test_explicit_wins_over_everything() -> None:
    assert resolve_socket_path("/x/s.sock", FULL, 1000) == Path("/x/s.sock")


def test_chatd_socket_env() -> None:
    assert resolve_socket_path(None, FULL, 1000) == Path("/env/chatd.sock")


def test_runtime_directory() -> None:
    env = {k: v for k, v in FULL.items() if k != "CHATD_SOCKET"}
    assert resolve_socket_path(None, env, 1000) == Path("/run/chatd/control.sock")


def test_runtime_directory_lists_several_takes_first() -> None:
    env = {"RUNTIME_DIRECTORY": "/run/chatd:/run/other", "XDG_RUNTIME_DIR": "/run/user/1"}
    assert resolve_socket_path(None, env, 1000) == Path("/run/chatd/control.sock")


def test_xdg_runtime_dir() -> None:
    env = {"XDG_RUNTIME_DIR": "/run/user/1000"}
    assert resolve_socket_path(None, env, 1000) == Path("/run/user/1000/chatd/control.sock")


def test_tmp_fallback_uses_uid() -> None:
    assert resolve_socket_path(None, {}, 1234) == Path("/tmp/chatd-1234/control.sock")


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        ("", FULL, "/env/chatd.sock"),
        (None, {**FULL, "CHATD_SOCKET": ""}, "/run/chatd/control.sock"),
        (None, {"RUNTIME_DIRECTORY": "", "XDG_RUNTIME_DIR": "/r"}, "/r/chatd/control.sock"),
        (None, {"XDG_RUNTIME_DIR": ""}, "/tmp/chatd-7/control.sock"),
    ],
)
def test_empty_value_counts_as_unset(
    explicit: str | None, env: dict[str, str], expected: str
) -> None:
    assert resolve_socket_path(explicit, env, 7) == Path(expected)


def test_runtime_directory_with_empty_first_entry_falls_through() -> None:
    env = {"RUNTIME_DIRECTORY": ":/run/other", "XDG_RUNTIME_DIR": "/run/user/7"}
    assert resolve_socket_path(None, env, 7) == Path("/run/user/7/chatd/control.sock")
