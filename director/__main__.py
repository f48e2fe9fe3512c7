"""``chat-director``: the well-known entry point that points newcomers at the coordinator.

Exit status: 0 after SIGTERM/SIGINT, 2 for a usage, secret or TLS file error, 3 if it
cannot listen (the same code as chatd's). SIGHUP reloads the secret file.
"""

from __future__ import annotations

import argparse
import signal
import ssl
import sys
from collections.abc import Sequence
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chat.auth import Keyring, SecretError, load_keyring
from chat.exits import EXIT_LISTEN
from chat.log import configure, get_logger
from chat.notify import sd_notify, service_tasks
from director.app import DirectorApp
from director.registry import Registry
from director.serve import TlsFiles, hypercorn_config, serve_director


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-director",
        description="Point chat nodes at the current coordinator. Never sees chat text.",
    )
    parser.add_argument("--version", action="version", version=f"chat-director {version('chat')}")
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
        "--tls-cert",
        metavar="PATH",
        help="serve HTTPS with this certificate (PEM; with --tls-key); chatd can pin it"
        " with --director-cert",
    )
    parser.add_argument("--tls-key", metavar="PATH", help="the certificate's private key (PEM)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return parser


async def run_director(
    app: DirectorApp,
    host: str,
    port: int,
    grace: float = 0.0,
    *,
    secret_file: str | None = None,
    tls: TlsFiles | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully and return; on SIGHUP, read
    ``secret_file`` again (requests are checked with the new keyring from then on)."""
    log = get_logger(component="director")
    app.registry.not_before = app.clock() + grace
    # Opened before serving, so a signal during start-up is queued rather than fatal
    # (SIGHUP's default action, too, is to terminate).
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                partial(serve_director, app, host, port, shutdown_trigger=stop.wait, tls=tls)
            )
            log.info(
                "director.ready",
                address=url,
                port=urlsplit(url).port,
                secure=app.keyring is not None,
                tls=tls is not None,
            )
            sd_notify("READY=1")
            async with service_tasks(partial(director_status, app)):
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        _reload_secrets(app, secret_file, log)
                        continue
                    log.info("director.stopping", signal=signal.Signals(signum).name)
                    sd_notify("STOPPING=1")
                    stop.set()
                    break
    log.info("director.stopped")


def director_status(app: DirectorApp) -> str:
    """The one line ``systemctl status chat-director`` shows (STATUS=)."""
    registry = app.registry
    record = registry.current(app.clock())
    if record is None:
        return f"no coordinator, highest term {registry.max_term}"
    state = "starting" if registry.provisional else "coordinator"
    return f"{state} {record.node_id[:8]} at {record.public_address}, term {record.term}"


def _reload_secrets(app: DirectorApp, secret_file: str | None, log: Any) -> None:
    """Replace the keyring with the secret file's secrets (README: Rotating the group
    secret); a file that cannot be used keeps the secrets loaded before. The nonces seen
    are kept: a request accepted before cannot be replayed after."""
    if secret_file is None:
        log.warning("director.secret.reload_ignored", reason="the director runs --insecure")
        return
    try:
        keyring = load_keyring(secret_file)
    except SecretError as exc:
        log.error("director.secret.reload_failed", error=str(exc), kept="the secrets loaded before")
        return
    first_changed = app.keyring is None or app.keyring.primary != keyring.primary
    app.keyring = keyring
    log.info("director.secret.reloaded", secrets=len(keyring.secrets), first_changed=first_changed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together: give both, or neither for HTTP")
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
    tls = None if args.tls_cert is None else TlsFiles(args.tls_cert, args.tls_key)
    if tls is not None:
        problem = _tls_problem(args.host, tls)
        if problem is not None:
            print(f"chat-director: {problem}", file=sys.stderr)
            return 2
    ttl = args.coordinator_ttl if args.coordinator_ttl > 0 else None
    app = DirectorApp(Registry(ttl=ttl), keyring)
    failure: OSError | None = None
    try:
        trio.run(
            partial(
                run_director,
                app,
                args.host,
                args.port,
                max(args.startup_grace, 0.0),
                secret_file=args.secret_file,
                tls=tls,
            )
        )
    except* OSError as group:
        failure = _first(group)
    if failure is None:
        return 0
    reason = (failure.strerror or str(failure)).lower()
    log.error("director.listen.failed", host=args.host, port=args.port, reason=reason)
    print(f"chat-director: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
    return EXIT_LISTEN


def _tls_problem(host: str, tls: TlsFiles) -> str | None:
    """Why the certificate and key cannot be served, if they cannot: checked now, so that a
    bad file is a usage error rather than a failure to listen."""
    try:
        cert_pem, key_pem = Path(tls.cert).read_bytes(), Path(tls.key).read_bytes()
    except OSError as exc:
        return f"cannot read {exc.filename}: {(exc.strerror or str(exc)).lower()}"
    try:
        certificate = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        return f"cannot use --tls-cert {tls.cert}: it holds no PEM certificate"
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return f"cannot use --tls-key {tls.key}: it is not an unencrypted PEM private key"
    if key.public_key() != certificate.public_key():
        return f"cannot use --tls-key {tls.key}: it is not the key of the --tls-cert {tls.cert}"
    try:
        # As hypercorn will load them, in case OpenSSL refuses what cryptography accepted.
        hypercorn_config(host, 0, tls).create_ssl_context()
    except ssl.SSLError as exc:
        return f"cannot use --tls-cert {tls.cert} with --tls-key {tls.key}: {exc.reason or exc}"
    return None


def _first(group: BaseExceptionGroup[OSError]) -> OSError:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, OSError)
    return exc


if __name__ == "__main__":
    sys.exit(main())
