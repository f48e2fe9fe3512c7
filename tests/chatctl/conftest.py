"""Fixtures for chatctl tests: a fake daemon on a short socket path, and a fixed time zone."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chatctl.fakedaemon import FakeDaemon, serving


@pytest.fixture
def sockdir() -> Iterator[Path]:
    # Not tmp_path: AF_UNIX paths are limited to ~107 bytes and pytest's can be longer.
    with tempfile.TemporaryDirectory(prefix="chatctl-") as name:
        yield Path(name)


@pytest.fixture
def daemon(sockdir: Path) -> Iterator[FakeDaemon]:
    with serving(FakeDaemon(sockdir / "control.sock")) as fake:
        yield fake


def set_tz(tz: str | None) -> None:
    if tz is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = tz
    time.tzset()


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Render times in UTC so that expected clock strings do not depend on the host."""
    saved = os.environ.get("TZ")
    set_tz("UTC")
    yield
    set_tz(saved)
