"""chatctl: talk to the local chatd over its control socket.

Output is for people by default; with ``--json`` it is JSON Lines with the wire field names,
for scripts. Text from the network is shown with control characters (except tab) escaped,
so a message cannot drive the terminal. Errors are one line on stderr: ``chatctl: ...``.

Exit codes:
  0     success; also Ctrl-C during tail --follow, stdout closed early (| head), and
        tail --follow ended by its node leaving cleanly ("-- node left" on stderr)
  1     any other failure
  2     usage error; also chatctl without a command (the help is printed), and chat
        without a terminal
  10+n  chatd refused the request with error code C, n = chat.wire.ERROR_CODES[C]:
        12 bad-request, 13 too-large, 14 not-ready, 15 forbidden, 16 leaving,
        17 internal, 18 busy, 19 rate-limited (10: a code this chatctl does not know)
        (14 also: status --check, the node has not joined the discussion)
  65    send -: stdin is not valid text
  69    no chatd at the socket path (no socket file, or nobody accepting on it)
  74    chatd closed the connection before answering, or a tail --follow was cut off
        (the node crashed or stopped at once, or the follower fell too far behind)
  75    no answer within --timeout seconds
  76    chatd's answer is malformed
  77    permission denied on the socket
  130   interrupted (Ctrl-C), except during tail --follow; also Ctrl-C in chat
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version

from chat.paths import resolve_socket_path
from chat.wire import ERROR_CODES, PresenceView, TaggedMessage, TaggedPresence
from chatctl import render
from chatctl.client import (
    DEFAULT_TIMEOUT,
    Client,
    ConnectionLost,
    ControlError,
    NoDaemon,
    PermissionDenied,
    ProtocolError,
    RemoteError,
    Timeout,
    connect,
)

EX_FAILURE = 1
EX_USAGE = 2
EX_REMOTE = 10
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_PROTOCOL = 76
EX_NOPERM = 77
EX_INTERRUPTED = 130
# status --check: the node runs but is not in the discussion (the daemon's "not-ready").
EX_NOT_JOINED = EX_REMOTE + ERROR_CODES["not-ready"]
JOINED_ROLES = frozenset({"member", "coordinator"})

_EXIT_CODES: tuple[tuple[type[ControlError], int], ...] = (
    (NoDaemon, EX_UNAVAILABLE),
    (PermissionDenied, EX_NOPERM),
    (Timeout, EX_TEMPFAIL),
    (ConnectionLost, EX_IOERR),
    (ProtocolError, EX_PROTOCOL),
)

Command = Callable[[argparse.Namespace, Client], int]


def exit_code(exc: ControlError) -> int:
    if isinstance(exc, RemoteError):
        return EX_REMOTE + ERROR_CODES.get(exc.code, 0)
    return next((code for cls, code in _EXIT_CODES if isinstance(exc, cls)), EX_FAILURE)


def fail(message: str, code: int) -> int:
    print(f"chatctl: {render.visible(message)}", file=sys.stderr)
    return code


def out(line: str) -> None:
    sys.stdout.write(line + "\n")


def cmd_send(args: argparse.Namespace, client: Client) -> int:
    if args.text != ["-"]:
        view = client.send(" ".join(args.text))
        if args.json:
            out(render.json_line(view))
        return 0
    try:
        for number, raw in enumerate(sys.stdin, 1):
            text = raw.removesuffix("\n").removesuffix("\r")
            if not text.strip():
                continue
            try:
                view = client.send(text)
            except ControlError as exc:
                return fail(f"stdin line {number}: {exc}", exit_code(exc))
            if args.json:
                out(render.json_line(view))
                sys.stdout.flush()  # a script reading our output sees each send at once
    except UnicodeDecodeError:
        return fail("stdin is not valid text in the locale's encoding", EX_DATAERR)
    return 0


def cmd_tail(args: argparse.Namespace, client: Client) -> int:
    try:
        if args.json and not args.events:  # the plain message lines scripts rely on
            for message in client.tail(last=args.last, follow=args.follow):
                out(render.json_line(message))
                if args.follow:
                    sys.stdout.flush()
        else:
            for item in client.events(last=args.last, follow=args.follow):
                if isinstance(item, PresenceView):
                    line = TaggedPresence(presence=item) if args.json else None
                    out(render.json_line(line) if line else render.presence_line(item))
                else:
                    tagged = TaggedMessage(message=item) if args.json else None
                    out(render.json_line(tagged) if tagged else render.message_line(item))
                if args.follow:
                    sys.stdout.flush()
    except KeyboardInterrupt:
        if args.follow:  # the usual way to stop following: not a failure
            return 0
        raise
    if args.follow:  # a followed stream ends without an error only when its node leaves
        sys.stdout.flush()
        print("-- node left", file=sys.stderr)
    return 0


def cmd_history(args: argparse.Namespace, client: Client) -> int:
    for message in client.history():
        out(render.json_line(message) if args.json else render.message_line(message))
    return 0


def cmd_status(args: argparse.Namespace, client: Client) -> int:
    status = client.status()
    if args.json:
        out(render.json_line(status))
    if args.check:
        summary = render.check_line(status)
        if status.role not in JOINED_ROLES:
            return fail(f"not joined: {summary}", EX_NOT_JOINED)
        if not args.json:
            out(summary)
    elif not args.json:
        for line in render.status_lines(status):
            out(line)
    return 0


def cmd_who(args: argparse.Namespace, client: Client) -> int:
    members = client.who()
    if args.json:
        for member in members:
            out(render.json_line(member))
        return 0
    for line in render.who_lines(members):
        out(line)
    return 0


def cmd_nick(args: argparse.Namespace, client: Client) -> int:
    name = client.nick(args.name)
    if args.json:
        out(render.json_line({"name": name}))
    return 0


def cmd_leave(args: argparse.Namespace, client: Client) -> int:
    client.leave()
    return 0


def cmd_chat(args: argparse.Namespace, client: Client) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return fail("chat needs a terminal (stdin and stdout); use send and tail -f", EX_USAGE)
    client.close()
    from chatctl.chat import main as chat

    return chat(client.path, args.timeout, args.last)


def _epilog() -> str:
    doc = __doc__ or ""  # None under python -OO
    return doc[doc.find("Exit codes:") :] if "Exit codes:" in doc else ""


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {value!r}")
    return number


def _positive_seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {value!r}")
    return number


def _connection_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--socket and --timeout. A command's copies have no defaults, so that one given
    before the command is not overwritten by the command's parser when not repeated."""
    parser.add_argument(
        "--socket",
        metavar="PATH",
        default=None if defaults else argparse.SUPPRESS,
        help="control socket (default: $CHATD_SOCKET, $RUNTIME_DIRECTORY/control.sock, "
        "$XDG_RUNTIME_DIR/chatd/control.sock, /tmp/chatd-$UID/control.sock)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT if defaults else argparse.SUPPRESS,
        help=f"give up on an answer after this long (default {DEFAULT_TIMEOUT:g}; "
        "tail --follow waits forever for new messages)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatctl",
        # Raw text (the exit-code table): lines are broken by hand.
        description="Talk to the local chatd over its control socket.\n\n"
        "--socket and --timeout go before the command or after it:\n"
        "  chatctl --socket PATH send hi\n"
        "  chatctl send --socket PATH hi",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(parser, defaults=True)
    parser.add_argument("--version", action="version", version=f"chatctl {version('chat')}")
    after = argparse.ArgumentParser(add_help=False)
    _connection_options(after, defaults=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(
        name: str, run: Command, summary: str, json: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary, description=summary, parents=[after])
        if json:
            p.add_argument("--json", action="store_true", help="print JSON Lines")
        p.set_defaults(run=run)
        return p

    send = command("send", cmd_send, "send a message ('-': one message per line of stdin)")
    send.add_argument("text", nargs="+", metavar="TEXT", help="words, joined by spaces")
    tail = command(
        "tail",
        cmd_tail,
        "show the last messages, and with -f each new one and presence notices (-- alice joined)",
    )
    tail.add_argument("-f", "--follow", action="store_true", help="keep showing new messages")
    tail.add_argument(
        "--events",
        action="store_true",
        help="with --json: tag each line with its kind (message or presence) and include"
        " presence events",
    )
    tail.add_argument(
        "-n", dest="last", type=_non_negative, default=10, metavar="N", help="last N (10)"
    )
    command("history", cmd_history, "show the whole discussion in canonical order")
    status = command("status", cmd_status, "show this node's view of the discussion")
    status.add_argument(
        "--check",
        action="store_true",
        help="one line, and exit 14 unless the node has joined (a health check)",
    )
    command("who", cmd_who, "list the members: name, role, link, idle time ((you): this node)")
    nick = command("nick", cmd_nick, "rename this node; every member sees it (renamed)")
    nick.add_argument("name", metavar="NAME", help="1-32 characters, no '#' or control/bidi")
    chat = command("chat", cmd_chat, "talk: a full-screen client (/help inside)", json=False)
    chat.add_argument(
        "-n", dest="last", type=_non_negative, default=50, metavar="N", help="last N first (50)"
    )
    command("leave", cmd_leave, "make the node leave the discussion and exit", json=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run chatctl with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and usage errors: argparse has printed already
        return exc.code if isinstance(exc.code, int) else EX_FAILURE
    if args.command is None:
        # As git does: the help, on stdout, and a failure status (ours for usage), so a
        # script that forgot its command does not pass for one that ran it.
        parser.print_help()
        return EX_USAGE
    _tolerate_unencodable_output()
    path = resolve_socket_path(args.socket, os.environ, os.getuid())
    run: Command = args.run
    try:
        with connect(path, timeout=args.timeout) as client:
            code = run(args, client)
        sys.stdout.flush()
        return code
    except ControlError as exc:
        return fail(str(exc), exit_code(exc))
    except BrokenPipeError:  # the reader went away (e.g. | head): nothing left to do
        _discard_stdout()
        return 0
    except KeyboardInterrupt:
        return EX_INTERRUPTED


def _tolerate_unencodable_output() -> None:
    # A name in a script the terminal's encoding lacks must not crash the listing.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def _discard_stdout() -> None:
    # Python flushes stdout at exit; point it at /dev/null so that flush cannot fail too.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (e.g. captured)
        pass


if __name__ == "__main__":
    sys.exit(main())
