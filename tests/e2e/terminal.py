"""A real pseudo-terminal for full-screen clients: pexpect runs the program, pyte keeps
the screen as a terminal would show it, and tests wait for what the screen shows.

Waiting is always for a condition on the screen (or the exit) with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pexpect  # type: ignore[import-untyped]
import pyte

from chat_testing.process import child_env
from chat_testing.waiting import DEFAULT_TIMEOUT, WaitTimeout

# The alternate screen (xterm's private mode 1049): entered by full-screen programs and
# left on exit, which puts the user's shell screen back.
ENTER_ALTERNATE = b"\x1b[?1049h"
LEAVE_ALTERNATE = b"\x1b[?1049l"


class Terminal:
    """``argv`` on a ``rows`` x ``columns`` pseudo-terminal (TERM=xterm-256color)."""

    def __init__(self, argv: Sequence[str], rows: int = 24, columns: int = 80) -> None:
        env = child_env()
        env["TERM"] = "xterm-256color"
        env["LANG"] = env["LC_ALL"] = "C.UTF-8"
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()  # every byte the program wrote
        self.child = pexpect.spawn(
            argv[0], list(argv[1:]), env=env, dimensions=(rows, columns), timeout=None
        )

    def _pump(self, timeout: float) -> bool:
        """Feed what the program wrote within ``timeout`` s to the screen; False at its end."""
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return True
        except pexpect.EOF:
            return False
        self.raw += data
        self.stream.feed(data)
        return True

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait(
        self, predicate: Callable[[str], bool], what: str, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """Read the program's output until ``predicate(screen text)``; the screen text."""
        deadline = time.monotonic() + timeout
        while not predicate(self.text):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._pump(min(remaining, 0.5)):
                if predicate(self.text):
                    break
                state = "ended" if remaining > 0 else f"timed out after {timeout:g}s"
                raise WaitTimeout(f"{state} waiting for {what}; the screen:\n{self.text}")
        return self.text

    def wait_for(self, needle: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        return self.wait(lambda text: needle in text, repr(needle), timeout)

    def type(self, text: str) -> None:
        self.child.send(text.encode())

    def line(self, text: str) -> None:
        """Type ``text`` and Enter."""
        self.child.send(text.encode() + b"\r")

    def resize(self, rows: int, columns: int) -> None:
        self.screen.resize(rows, columns)
        self.child.setwinsize(rows, columns)

    def wait_exit(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Read everything up to the end of output; the exit status (128+n for signal n)."""
        deadline = time.monotonic() + timeout
        while self._pump(max(0.0, min(0.5, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"the program did not exit within {timeout:g}s:\n{self.text}")
        self.child.close()
        if self.child.signalstatus is not None:
            return 128 + int(self.child.signalstatus)
        return int(self.child.exitstatus or 0)

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()
