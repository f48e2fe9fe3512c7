"""Who may use the control socket (``chatd.control.ControlAccess``): pure decisions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatd.__main__ import main as chatd_main
from chatd.control.access import ControlAccess, supplementary_groups

NO_GROUPS: frozenset[int] = frozenset()


def never() -> frozenset[int]:
    raise AssertionError("the supplementary groups were read, but could not decide")


def test_root_and_the_owner_only_by_default() -> None:
    access = ControlAccess(owner=1000)
    assert not access.shared
    assert access.refusal(0, 0, never) is None
    assert access.refusal(1000, 1000, never) is None
    assert access.refusal(1001, 1000, never) == ("only root and uid 1000 (chatd's own) may use it")


def test_operators_by_uid_and_by_group() -> None:
    access = ControlAccess(owner=1000, uids=frozenset({1001}), gids=frozenset({50, 60}))
    assert access.shared
    assert access.refusal(1001, 1001, never) is None
    assert access.refusal(1002, 50, never) is None  # primary group
    assert access.refusal(1002, 1002, lambda: frozenset({7, 60})) is None  # supplementary
    assert access.refusal(1002, 1002, lambda: frozenset({7})) == (
        "only root, uid 1000 (chatd's own), uid 1001, members of gid 50 and members of gid 60"
        " may use it"
    )


def test_supplementary_groups_of_a_live_process_and_of_none() -> None:
    assert supplementary_groups(os.getpid()) == frozenset(os.getgroups())
    assert supplementary_groups(2**22 + 1) == NO_GROUPS  # above any pid_max: no such process


def test_operators_may_be_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--director", "http://127.0.0.1:1", "--insecure", "--socket", str(tmp_path / "s")]
    with pytest.raises(SystemExit) as exited:
        chatd_main([*argv, "--control-uid", "no-such-user-4c1e"])
    assert exited.value.code == 2
    assert "no such user: 'no-such-user-4c1e'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        chatd_main([*argv, "--control-gid", "no-such-group-4c1e"])
    assert "no such group: 'no-such-group-4c1e'" in capsys.readouterr().err
