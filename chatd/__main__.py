"""``chatd``: run one chat node."""

from __future__ import annotations

import argparse
import getpass
import grp
import os
import pwd
import sys
from importlib.metadata import version

import attrs
import trio

from chat import log as chat_log
from chat.auth import SecretError, load_keyring
from chat.exits import find_fatal
from chat.names import name_problem
from chat.paths import resolve_socket_path
from chat.wire.bounds import MAX_PRIORITY, MIN_PRIORITY
from chatd.addresses import advertise_problem, is_wildcard
from chatd.config import PROFILES, Config
from chatd.control.access import ControlAccess
from chatd.daemon import Options, run_chatd
from chatd.director_client import DirectorError, check_base_url, load_director_cert
from chatd.irc.server import IrcOptionError, IrcSettings, load_password, parse_address


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chatd",
        description="A node of a transient group chat: the discussion lives only in memory.",
    )
    p.add_argument("--version", action="version", version=f"chatd {version('chat')}")
    _add_network(p)
    _add_control(p)
    secret = p.add_mutually_exclusive_group(required=True)
    secret.add_argument("--secret-file", metavar="PATH", help="file holding the group secret")
    secret.add_argument(
        "--insecure", action="store_true", help="run without a group secret (anyone may join)"
    )
    _add_tuning(p)
    _add_irc(p)
    p.add_argument(
        "--bench-trace",
        action="store_true",
        help="benchmarks only: print a JSON line with a monotonic timestamp per delivery",
    )
    return p


def _add_network(p: argparse.ArgumentParser) -> None:
    """Where the director is, where peers connect, who this node is."""
    p.add_argument("--director", required=True, metavar="URL", help="director, http[s]://HOST:PORT")
    p.add_argument(
        "--director-cert",
        metavar="PATH",
        help="the https director's certificate (PEM): trust it alone, whatever the host name",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on for peers")
    p.add_argument("--port", type=int, default=0, help="peer port; 0 picks a free one")
    p.add_argument(
        "--advertise",
        metavar="wss://HOST:PORT",
        help="address peers should dial (ws:// with --insecure)",
    )
    p.add_argument(
        "--name",
        default=None,
        help="display name: 1-32 characters, no '#', controls or bidi/format characters"
        " (default: the user name)",
    )
    p.add_argument("--priority", type=int, default=0, help="election priority (higher wins)")


def _add_control(p: argparse.ArgumentParser) -> None:
    """The control socket and who may use it."""
    p.add_argument("--socket", metavar="PATH", help="control socket path")
    p.add_argument(
        "--control-uid",
        action="append",
        type=_uid,
        default=[],
        metavar="UID",
        help="a user (number or name) who may use the control socket besides root and"
        " chatd's own user; repeatable",
    )
    p.add_argument(
        "--control-gid",
        action="append",
        type=_gid,
        default=[],
        metavar="GID",
        help="a group (number or name) whose members (primary or supplementary group) may"
        " use the control socket; repeatable",
    )


def _add_tuning(p: argparse.ArgumentParser) -> None:
    """Timers, logging and the flood limits."""
    p.add_argument("--profile", choices=sorted(PROFILES), default="lan", help="timer profile")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--flood-rate",
        type=float,
        metavar="MSGS/S",
        help="messages a second this node's user may send (default 10; receivers allow 2x)",
    )
    p.add_argument(
        "--flood-burst", type=int, metavar="N", help="messages at once above the rate (default 50)"
    )


def _add_irc(p: argparse.ArgumentParser) -> None:
    """The IRC gateway."""
    p.add_argument(
        "--irc",
        metavar="HOST:PORT",
        help="serve IRC clients here (loopback only unless --irc-allow-remote), e.g."
        " 127.0.0.1:6667; the password is in `chatctl status`",
    )
    p.add_argument(
        "--irc-password-file",
        metavar="PATH",
        help="the IRC gateway's password: the file's first line (default: a random one)",
    )
    p.add_argument(
        "--irc-allow-remote",
        action="store_true",
        help="let --irc listen on an address other hosts can reach (logged as a warning)",
    )


class UsageError(Exception):
    """A command line chatd cannot run with; the message says why (exit code 2)."""


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    chat_log.configure(args.log_level)
    try:
        options, config = options_from(args)
    except (UsageError, DirectorError, SecretError, IrcOptionError) as exc:
        print(f"chatd: {exc}", file=sys.stderr)
        return 2
    try:
        return trio.run(run_chatd, options, config, chat_log.get_logger())
    except BaseException as exc:
        fatal = find_fatal(exc)
        if fatal is None:
            raise
        print(f"chatd: {fatal}", file=sys.stderr)
        return fatal.exit_code


def options_from(args: argparse.Namespace) -> tuple[Options, Config]:
    """The node's options and timer profile from its command line, each value checked;
    raises ``UsageError`` (or the error of the file it could not load) on the first
    problem, in the order of the checks below."""
    director = check_base_url(args.director)
    keyring = None if args.insecure else load_keyring(args.secret_file)
    director_cert = None
    if args.director_cert is not None:
        if director.scheme != "https":
            raise DirectorError("--director-cert needs an https:// --director URL")
        director_cert = load_director_cert(args.director_cert)
    _check_addresses(args)
    if not MIN_PRIORITY <= args.priority <= MAX_PRIORITY:
        raise UsageError(f"priority {args.priority} is outside a 32-bit integer")
    config = _config(args)
    irc = _irc(args)
    if args.name is not None and (problem := name_problem(args.name)) is not None:
        raise UsageError(f"--name: {problem}")
    options = Options(
        director=args.director,
        director_cert=director_cert,
        host=args.host,
        port=args.port,
        advertise=args.advertise,
        name=args.name if args.name is not None else _default_name(),
        priority=args.priority,
        socket=resolve_socket_path(args.socket, os.environ, os.getuid()),
        socket_explicit=bool(args.socket or os.environ.get("CHATD_SOCKET")),
        control_access=ControlAccess(
            owner=os.getuid(), uids=frozenset(args.control_uid), gids=frozenset(args.control_gid)
        ),
        keyring=keyring,
        secret_file=args.secret_file,
        bench_trace=args.bench_trace,
        irc=irc,
    )
    return options, config


def _check_addresses(args: argparse.Namespace) -> None:
    """--advertise (or, without it, --host) is an address peers can dial; --port a port."""
    scheme = "ws" if args.insecure else "wss"
    if args.advertise is not None:
        if not args.advertise.startswith(f"{scheme}://"):
            mode = (
                "runs --insecure (plain websockets)"
                if args.insecure
                else "has a group secret (TLS)"
            )
            raise UsageError(
                f"--advertise {args.advertise}: this node {mode}, so its address"
                f" starts with {scheme}://"
            )
        problem = advertise_problem(args.advertise, scheme)
        if problem is not None:
            raise UsageError(f"--advertise {args.advertise}: {problem}")
    elif is_wildcard(args.host):
        # The listen address would be advertised, and no peer can dial a wildcard.
        raise UsageError(
            f"--host {args.host} listens on every address of this host: give"
            f" --advertise {scheme}://ADDRESS:PORT, the address peers should dial"
        )
    if not 0 <= args.port <= 65535:
        raise UsageError(f"port {args.port} is out of range")


def _config(args: argparse.Namespace) -> Config:
    """The --profile's timers, with --flood-rate and --flood-burst when given."""
    config = PROFILES[args.profile]
    if args.flood_rate is not None:
        if not args.flood_rate > 0:
            raise UsageError("--flood-rate must be positive")
        config = attrs.evolve(config, flood_rate=args.flood_rate)
    if args.flood_burst is not None:
        if args.flood_burst < 1:
            raise UsageError("--flood-burst must be at least 1")
        config = attrs.evolve(config, flood_burst=args.flood_burst)
    return config


def _irc(args: argparse.Namespace) -> IrcSettings | None:
    """The IRC gateway's settings, None without --irc."""
    if args.irc is not None:
        host, port = parse_address(args.irc, args.irc_allow_remote)
        return IrcSettings(host, port, load_password(args.irc_password_file))
    if args.irc_password_file is not None or args.irc_allow_remote:
        raise UsageError("--irc-password-file and --irc-allow-remote need --irc")
    return None


def _uid(value: str) -> int:
    try:
        return int(value) if value.isdigit() else pwd.getpwnam(value).pw_uid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such user: {value!r}") from None


def _gid(value: str) -> int:
    try:
        return int(value) if value.isdigit() else grp.getgrnam(value).gr_gid
    except KeyError:
        raise argparse.ArgumentTypeError(f"no such group: {value!r}") from None


def _default_name() -> str:
    """The user name, if it is a valid name (chat.names), else "node"."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        return "node"
    return user if name_problem(user) is None else "node"


if __name__ == "__main__":
    sys.exit(main())
