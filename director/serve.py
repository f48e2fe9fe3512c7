"""Serving the director's ASGI app with hypercorn on trio, over HTTP or HTTPS."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import trio
from attrs import frozen
from hypercorn.config import Config
from hypercorn.trio import serve

from director.app import DirectorApp


@frozen
class TlsFiles:
    """The director's certificate (PEM, its chain may follow) and private key (PEM)."""

    cert: str
    key: str


def hypercorn_config(host: str, port: int, tls: TlsFiles | None = None) -> Config:
    """A hypercorn config that binds ``host:port`` (HTTPS with ``tls``) and logs only
    through the stdlib root. ``config.create_ssl_context()`` loads the TLS files: call it
    first to report a bad file before serving."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if tls is not None:
        config.certfile, config.keyfile = tls.cert, tls.key
        # hypercorn waits 60 s by default; chatd gives a whole request 3 s (lan profile).
        config.ssl_handshake_timeout = 10
    # The app logs every request itself; hypercorn's access log would be a second,
    # unstructured copy (and its default targets are files or raw streams).
    config.accesslog = None
    # A Logger instance is used as is: it propagates to the root handler that
    # chat.log.configure() installed, so hypercorn's errors come out as structlog JSON.
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    return config


async def serve_director(
    app: DirectorApp,
    host: str,
    port: int,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    tls: TlsFiles | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown_trigger`` returns, then drain gracefully and return.

    Reports the bound URL (``http://127.0.0.1:41234``, or ``https://`` with ``tls``: the
    real port when ``port`` is 0, read by hypercorn from the listening socket) through
    ``task_status`` once the listener accepts connections. A failure to bind raises
    ``OSError`` (inside exception groups), as does a TLS file that cannot be loaded.
    """
    config = hypercorn_config(host, port, tls)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve, app, config, shutdown_trigger=shutdown_trigger, mode="asgi")
        )
        task_status.started(binds[0])
