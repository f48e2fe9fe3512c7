"""structlog set-up shared by chatd and the director.

JSON Lines on stdout when it is not a terminal, a console renderer when it is; ISO UTC
timestamps; tracebacks as dicts; stdlib loggers (trio-websocket, hypercorn, httpx) routed
through the same processors. Nothing is written to disk. Callers bind ``node-id``, ``name``
and ``term``. Message text must never be passed to a logger: ids and lengths only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Protocol

import structlog
from structlog.typing import FilteringBoundLogger, Processor

# What every chat logger is: structlog's level-filtering bound logger (``debug``, ``info``,
# ``warning``, ``error``, ``exception``, ``bind``). Type ``log`` parameters with it.
Logger = FilteringBoundLogger


class WarningLog(Protocol):
    """What rate-limited reports need of a logger: ``warning`` alone. A ``Logger`` is one,
    and so is ``chatd.control.LogLimiter`` (or a test's recorder)."""

    def warning(self, event: str, **fields: Any) -> Any: ...


_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure(level: str = "info", json: bool | None = None) -> None:
    """Configure structlog and the stdlib root logger; idempotent."""
    if json is None:
        json = not sys.stdout.isatty()
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            # Tracebacks without local variables: a local may hold message text.
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
            if json
            else structlog.dev.set_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter below WARNING is noise in an operator's log.
    for noisy in ("trio-websocket", "hypercorn", "httpx", "httpcore", "hpack"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(**bound: Any) -> Logger:
    logger: Logger = structlog.get_logger("chat").bind(**bound)
    return logger
