"""Waiting for a condition with a deadline, never for a fixed time.

``wait_until`` polls a predicate and fails naming what it waited for; ``overall_deadline``
bounds a whole test, interrupting even a blocking call.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

# Long enough for a loaded 2-core machine; every wait still has a deadline.
DEFAULT_TIMEOUT = 20.0
POLL_INTERVAL = 0.05


class WaitTimeout(AssertionError):
    """A condition did not come true in time."""


class DeadlineExceeded(AssertionError):
    """A test ran past its overall deadline."""


class GaveUp(AssertionError):
    """Raised by a ``wait_until`` predicate: waiting longer cannot help (ends the wait)."""


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = POLL_INTERVAL,
) -> T:
    """Poll ``predicate`` until it returns a truthy value, and return that value.

    An exception from ``predicate`` counts as "not yet" (a process may still be starting),
    except ``GaveUp``, which ends the wait at once. Past the deadline, ``WaitTimeout``
    names ``what`` and the last value or error.
    """
    deadline = time.monotonic() + timeout
    last: str = "never evaluated"
    while True:
        try:
            value = predicate()
        except GaveUp:
            raise
        except Exception as exc:
            last = f"last error: {type(exc).__name__}: {exc}"
        else:
            if value:
                return value
            last = f"last value: {_short(value)}"
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what} ({last})")
        time.sleep(interval)


def _short(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


@contextmanager
def overall_deadline(seconds: float, what: str = "the test") -> Iterator[None]:
    """Fail with ``DeadlineExceeded`` if the body runs longer than ``seconds``.

    A SIGALRM timer interrupts even a blocking call; main thread only, not nestable.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("overall_deadline works in the main thread only")
    if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        raise RuntimeError("overall_deadline cannot be nested")

    def expired(signum: int, frame: FrameType | None) -> None:
        raise DeadlineExceeded(f"{what} ran past its overall deadline of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
