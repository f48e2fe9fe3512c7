"""``chat-director``: the well-known entry point that points newcomers at the coordinator.

Exit status: 0 after SIGTERM/SIGINT, 1 if it cannot listen, 2 for a usage or secret error.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from functools import partial
from urllib.parse import urlsplit

import trio

from chatd.auth import Keyring, SecretError, load_keyring
from chatd.log import configure, get_logger
from chatd.notify import sd_notify
from director.app import DirectorApp
from director.registry import Registry
from director.serve import serve_director


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-director",
        description="Point chat nodes at the current coordinator. Never sees chat text.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8700, help="0 picks a free port (logged)")
    auth = parser.add_mutually_exclusive_group(required=True)
    auth.add_argument("--secret-file", metavar="PATH", help="group secret; POSTs must be signed")
    auth.add_argument("--insecure", action="store_true", help="accept unsigned requests")
    parser.add_argument(
        "--coordinator-ttl",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="forget a coordinator silent this long (default 30; 0 never forgets)",
    )
    parser.add_argument(
        "--startup-grace",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="after starting, tell newcomers to wait this long before one may start a new"
        " discussion, so a running discussion's coordinator can re-register first"
        " (default 3: three of chatd's 1 s registration intervals)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


async def run_director(app: DirectorApp, host: str, port: int, grace: float = 0.0) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully and return."""
    log = get_logger(component="director")
    app.registry.not_before = app.clock() + grace
    # Opened before serving, so a signal during start-up is queued rather than fatal.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve_director, app, host, port, shutdown_trigger=stop.wait)
            )
            log.info(
                "director.ready",
                address=url,
                port=urlsplit(url).port,
                secure=app.keyring is not None,
            )
            sd_notify("READY=1")
            async for signum in signals:
                log.info("director.stopping", signal=signal.Signals(signum).name)
                sd_notify("STOPPING=1")
                stop.set()
                break
    log.info("director.stopped")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure(args.log_level)
    log = get_logger(component="director")
    keyring: Keyring | None = None
    if args.secret_file is not None:
        try:
            keyring = load_keyring(args.secret_file)
        except SecretError as exc:
            print(f"chat-director: {exc}", file=sys.stderr)
            return 2
    else:
        log.warning("director.insecure", hint="anyone who can reach it can register a coordinator")
    ttl = args.coordinator_ttl if args.coordinator_ttl > 0 else None
    app = DirectorApp(Registry(ttl=ttl), keyring)
    failure: OSError | None = None
    try:
        trio.run(run_director, app, args.host, args.port, max(args.startup_grace, 0.0))
    except* OSError as group:
        failure = _first(group)
    if failure is None:
        return 0
    reason = (failure.strerror or str(failure)).lower()
    log.error("director.listen.failed", host=args.host, port=args.port, reason=reason)
    print(f"chat-director: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
    return 1


def _first(group: BaseExceptionGroup[OSError]) -> OSError:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, OSError)
    return exc


if __name__ == "__main__":
    sys.exit(main())
