"""The README's first command, as far as a test can take it: the demo's scripted exchange."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_runs_the_exchange_and_leaves_nothing_behind(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    demo = subprocess.Popen(
        [sys.executable, "-m", "chat_testing.demo", "--script-only"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = demo.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        demo.terminate()  # the demo stops its daemons on SIGTERM
        stdout, stderr = demo.communicate(timeout=30)
        raise AssertionError(f"the demo did not finish: {stdout}{stderr}") from None
    assert demo.returncode == 0, stderr
    lines = stdout.splitlines()
    assert any("alice: Hi both." in line for line in lines)
    assert any("bob: So once the last of us leaves" in line for line in lines)
    assert any("carol: Exactly." in line for line in lines)
    assert sum("chatctl --socket" in line for line in lines) >= 3
    assert any("alice.sock chat " in line for line in lines), "the demo suggests chatctl chat"
    assert list(tmp_path.iterdir()) == [], "the demo left files behind"
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert leftovers.stdout == "", "the demo left processes behind"
