"""``make demo``: a director and three nodes on 127.0.0.1, a short exchange, then yours.

Everything lives in one private directory (memory-backed where the system has one):
a fresh random group secret and the three control sockets. The daemons' JSON logs are
kept in memory and shown only with ``--logs``. Ctrl-C makes every node leave, stops the
director and removes the directory: the discussion is gone.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from chat.wire.control import MessageView
from chat_testing.process import LineHook, binary
from chat_testing.processes import Cluster, Node
from chat_testing.waiting import GaveUp, WaitTimeout, wait_until
from chatctl.client import ControlError, connect
from chatctl.render import message_line

NAMES = ("alice", "bob", "carol")
SCRIPT = (
    ("alice", "Hi both. This discussion lives only in the memory of our three nodes."),
    ("bob", "So once the last of us leaves, it is gone? Like a phone call."),
    ("carol", "Exactly. Try chatctl from another terminal; Ctrl-C here ends it."),
)
WAIT = 15.0  # seconds for each step of the start-up
KEPT_LINES = 2000  # of each daemon's log, in memory


def private_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else None)
    return Path(tempfile.mkdtemp(prefix="chat-demo-", dir=base))


def members(sock: Path) -> int:
    try:
        with connect(sock, timeout=2) as client:
            status = client.status()
    except ControlError:
        return 0
    return len(status.members) if status.role in ("member", "coordinator") else 0


def history_size(sock: Path) -> int:
    with connect(sock, timeout=2) as client:
        return len(client.history())


def echo(name: str, on: bool) -> LineHook | None:
    """With ``--logs``: each line of the daemon's output on stderr, tagged with its name."""

    def show(raw: bytes) -> bool:
        print(f"  [{name}] {raw.decode(errors='replace').rstrip()}", file=sys.stderr)
        return False

    return show if on else None


def start(cluster: Cluster, logs: bool) -> tuple[str, dict[str, Path]]:
    """The director, then the nodes one at a time, so that the first one starts the
    discussion and the others join it; the director's address and the nodes' sockets."""
    # A new director: no discussion can be running, so no grace period is needed.
    director = cluster.start_director(timeout=WAIT, on_line=echo("director", logs))
    nodes: list[Node] = []
    for name in NAMES:
        extra = ["--irc", "127.0.0.1:0"] if name == "alice" else []
        node = cluster.spawn_node(name, director.address, extra=extra, on_line=echo(name, logs))
        wait_until(partial(members, node.socket), WAIT, f"{name} to join")
        nodes.append(node)
    socks = {node.name: node.socket for node in nodes}
    wait_until(lambda: all(members(s) == 3 for s in socks.values()), WAIT, "all three to meet")
    return director.address, socks


def introduce(url: str, secret: Path, socks: dict[str, Path]) -> None:
    """What is running and how to talk to it."""
    chatctl = binary("chatctl")
    print(
        f"A discussion is running: director {url}, three nodes, group secret in {secret}"
        " (every link between the nodes is TLS 1.3)."
    )
    print("Talk to it from another terminal:\n")
    print(f"  {chatctl} --socket {socks['alice']} chat   (full screen; /help, /quit)")
    for name in NAMES:
        print(f"  {chatctl} --socket {socks[name]} send 'hello from {name}'")
    print(f"  {chatctl} --socket {socks['bob']} tail -f")
    print(f"  {chatctl} --socket {socks['carol']} who")
    print(f"  {chatctl} --socket {socks['alice']} status --json\n")
    with connect(socks["alice"], timeout=2) as client:
        irc = client.status().irc
    if irc is not None:
        host, port = irc.address.rsplit(":", 1)
        connect_to = f"/connect {host} {port} {irc.password}"
        print(f"Or as alice from an IRC client (irssi): {connect_to}, then /join #chat\n")
    print("Messages as carol's node delivers them (Ctrl-C: everyone leaves, all is gone):\n")
    sys.stdout.flush()


def converse(socks: dict[str, Path], script_only: bool) -> None:
    """The scripted exchange as carol's node delivers it, then (unless ``script_only``)
    every later message until Ctrl-C."""
    tail: Iterator[MessageView] = connect(socks["carol"], timeout=None).tail(last=0, follow=True)
    for name, text in SCRIPT:
        with connect(socks[name]) as client:
            client.send(text)
        # carol has it before the next line is sent, so that one causally follows it
        print("  " + message_line(next(tail)), flush=True)
    wait_until(
        lambda: all(history_size(s) == len(SCRIPT) for s in socks.values()),
        WAIT,
        "the exchange to reach every node",
    )
    while not script_only:
        print("  " + message_line(next(tail)), flush=True)


def run(args: argparse.Namespace) -> int:
    workdir = private_dir()
    # Children in sessions of their own: Ctrl-C reaches the demo only, which then stops
    # each daemon once, in order.
    cluster = Cluster(
        workdir, secrets.token_urlsafe(32).encode(), max_lines=KEPT_LINES, new_session=True
    )
    try:
        url, socks = start(cluster, args.logs)
        introduce(url, cluster.secret_file, socks)
        converse(socks, args.script_only)
        return 0
    except KeyboardInterrupt:
        print()
        return 0
    except (ControlError, WaitTimeout, GaveUp) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        codes = [p.terminate() for p in reversed(cluster.processes)]
        cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)
        if not args.script_only:
            print(
                f"Every node left (exit codes {codes}); {workdir} removed. The discussion is gone."
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chat-demo", description=__doc__)
    parser.add_argument("--logs", action="store_true", help="echo the daemons' JSON logs")
    parser.add_argument(
        "--script-only", action="store_true", help="stop after the scripted exchange"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    return run(args)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
