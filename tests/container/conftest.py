"""The container tests run only from `make test-container` / `make test-kube`, which install
podman and build the image first; elsewhere they are skipped."""

from __future__ import annotations

import os
import signal
import uuid
from types import FrameType

import pytest

ENABLED = os.environ.get("CHAT_CONTAINER_TESTS") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="needs podman as root: make test-container / make test-kube")
    for item in items:
        if "tests/container/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so that fixtures remove what they made, as on Ctrl-C


@pytest.fixture(scope="session", autouse=True)
def _teardown_on_sigterm() -> None:
    if ENABLED:
        signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture
def run_id() -> str:
    """A prefix for everything a test creates, so that runs never collide."""
    return f"chat-test-{uuid.uuid4().hex[:8]}"
