"""These tests boot a Debian tree under systemd-nspawn: only ``make test-systemd`` runs
them (deploy/test-systemd.sh builds the tree and names it in ``$CHAT_SYSTEMD_ROOT``)."""

from __future__ import annotations

import os

import pytest

from tests.systemd.machine import KEPT_JOURNALS

collect_ignore_glob = [] if os.environ.get("CHAT_SYSTEMD_ROOT") else ["test_*.py"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for path in KEPT_JOURNALS:
        terminalreporter.write_line(f"test-systemd: the container's journal is in {path}")
