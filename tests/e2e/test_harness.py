"""The process harness itself (``chat_testing.process``, ``chat_testing.waiting``), on small
Python children: what it keeps of their output, how its waits end, how it stops them."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from chat_testing.process import Process
from chat_testing.waiting import GaveUp, WaitTimeout, wait_until

pytestmark = pytest.mark.e2e


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_output_is_kept_and_a_hook_may_consume_lines() -> None:
    seen: list[bytes] = []

    def hook(raw: bytes) -> bool:
        seen.append(raw)
        return raw.startswith(b"trace")

    code = "import sys\nfor i in range(5): print(f'trace {i}'); print(f'log {i}')\n"
    code += "print('oops', file=sys.stderr)"
    child = Process("child", python(code), on_line=hook, max_lines=3)
    assert child.wait_exit() == 0
    assert child.stdout_lines == ["log 2", "log 3", "log 4"]  # the last 3, traces consumed
    assert child.stderr_lines == ["oops"]
    assert len(seen) == 11


def test_a_wait_for_output_gives_up_once_the_child_has_exited() -> None:
    child = Process("quiet", python('print(\'{"event": "other"}\')'))
    with pytest.raises(GaveUp, match="exited"):
        child.wait_event("node.ready", timeout=30)
    assert child.wait_line("other") == '{"event": "other"}'


def test_terminate_kills_a_child_that_ignores_sigterm() -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('ready')\n"
    code += "time.sleep(60)"
    child = Process("stubborn", python(code))
    child.wait_line("ready")
    assert child.terminate(timeout=0.5) == -signal.SIGKILL
    assert not child.alive


def test_wait_until_returns_the_value_or_names_what_it_waited_for() -> None:
    start = time.monotonic()
    assert wait_until(lambda: time.monotonic() - start > 0.1 and "done", 5, "a while") == "done"
    empty: dict[str, str] = {}
    with pytest.raises(WaitTimeout, match=r"waiting for nothing \(last error: KeyError"):
        wait_until(lambda: empty["x"], 0.2, "nothing")
