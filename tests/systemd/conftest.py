"""These tests boot a Debian tree under systemd-nspawn: only ``make test-systemd`` runs
them (deploy/test-systemd.sh builds the tree and names it in ``$CHAT_SYSTEMD_ROOT``)."""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("CHAT_SYSTEMD_ROOT") else ["test_*.py"]
