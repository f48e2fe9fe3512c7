"""chat.files.read_bounded: what the secret file and the IRC password file are read with."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat.files import TooLarge, read_bounded


def test_a_file_within_the_limit_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"x" * 16)
    assert read_bounded(path, 16) == b"x" * 16
    assert read_bounded(str(path), 100) == b"x" * 16


def test_one_byte_over_the_limit_is_too_large(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"x" * 17)
    with pytest.raises(TooLarge) as caught:
        read_bounded(path, 16)
    assert caught.value.limit == 16
    assert str(caught.value) == f"{path} is over 16 bytes"


def test_an_endless_device_is_too_large_not_a_hang() -> None:
    with pytest.raises(TooLarge):
        read_bounded("/dev/zero", 4096)


def test_an_unreadable_path_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_bounded(tmp_path / "missing", 16)
    with pytest.raises(IsADirectoryError):
        read_bounded(tmp_path, 16)
