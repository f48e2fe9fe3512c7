"""What every decoder's run shares: the time limits, the timing of one decode, a decoder's
entry in the table, and short descriptions of inputs."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

# One decode of an input under the size cap taking longer than this is a failure: the
# slowest today (1 MiB worst cases) take under 0.1 s, so only super-linear work trips it.
SLOW_SECONDS = 1.0
# A decoder stuck this long (in C, where no Python check runs) is killed by faulthandler,
# with its traceback; the printed seed reproduces it.
HANG_SECONDS = 60.0

T = TypeVar("T")


_slowest = 0.0


def timed(decode: Callable[[Any], T], data: Any) -> T:
    """``decode(data)``, failing when it takes longer than SLOW_SECONDS."""
    global _slowest
    start = time.perf_counter()
    try:
        return decode(data)
    finally:
        took = time.perf_counter() - start
        _slowest = max(_slowest, took)
        assert took <= SLOW_SECONDS, f"decoding took {took:.2f} s (limit {SLOW_SECONDS} s)"


def take_slowest() -> float:
    """The slowest decode since the last call, in seconds."""
    global _slowest
    slowest, _slowest = _slowest, 0.0
    return slowest


@dataclass(frozen=True)
class Decoder:
    name: str
    make: Callable[[random.Random], Any]
    check: Callable[[Any], Any]
    cap_cases: list[tuple[str, Any]]


def short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"
