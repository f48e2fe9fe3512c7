"""A real director (hypercorn on 127.0.0.1, port 0) inside the test's own trio run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

from chat.auth import Keyring
from director.app import DirectorApp
from director.registry import Registry
from director.serve import TlsFiles, serve_director


@asynccontextmanager
async def open_director(
    secret: bytes | None = None, registry: Registry | None = None, tls: TlsFiles | None = None
) -> AsyncIterator[str]:
    """Yield the base URL of a director that accepts connections (``https://`` with
    ``tls``); stop it on exit."""
    keyring = Keyring.of(secret) if secret is not None else None
    app = DirectorApp(registry or Registry(), keyring)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(
            partial(serve_director, app, "127.0.0.1", 0, shutdown_trigger=stop.wait, tls=tls)
        )
        try:
            yield url
        finally:
            stop.set()
