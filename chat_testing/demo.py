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
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson

from chatctl.client import ControlError, connect
from chatctl.render import message_line

NAMES = ("alice", "bob", "carol")
SCRIPT = (
    ("alice", "Hi both. This discussion lives only in the memory of our three nodes."),
    ("bob", "So once the last of us leaves, it is gone? Like a phone call."),
    ("carol", "Exactly. Try chatctl from another terminal; Ctrl-C here ends it."),
)
BIN = Path(sys.executable).parent


class Daemon:
    """A child process whose stdout (JSON log lines) is read into memory by a thread."""

    def __init__(self, name: str, argv: list[str], echo: bool) -> None:
        self.name = name
        self.lines: deque[str] = deque(maxlen=2000)
        # A session of its own: Ctrl-C reaches the demo only, which then stops each daemon
        # once, in order.
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._echo = echo
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if self._echo:
                print(f"  [{self.name}] {line}", file=sys.stderr)

    def event(self, name: str) -> dict[str, object] | None:
        for line in list(self.lines):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("event") == name:
                return entry
        return None

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}")
        time.sleep(0.05)


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


def run(args: argparse.Namespace) -> int:
    workdir = private_dir()
    daemons: list[Daemon] = []
    try:
        secret = workdir / "secret"
        secret.touch(mode=0o600)
        secret.write_text(secrets.token_urlsafe(32))
        # A new director: no discussion can be running, so no grace period is needed.
        argv = [str(BIN / "chat-director"), "--port", "0", "--startup-grace", "0"]
        argv += ["--secret-file", str(secret)]
        director = Daemon("director", argv, args.logs)
        daemons.append(director)
        wait_for(lambda: director.event("director.ready"), "the director")
        ready = director.event("director.ready") or {}
        url = str(ready["address"])
        socks = {name: workdir / f"{name}.sock" for name in NAMES}
        for name in NAMES:
            argv = [str(BIN / "chatd"), "--director", url, "--name", name]
            argv += ["--socket", str(socks[name]), "--secret-file", str(secret)]
            argv += ["--irc", "127.0.0.1:0"] if name == "alice" else []
            daemons.append(Daemon(name, argv, args.logs))
            # One at a time, so the first one starts the discussion and the others join it.
            wait_for(partial(members, socks[name]), f"{name} to join")
        wait_for(lambda: all(members(s) == 3 for s in socks.values()), "all three to meet")

        chatctl = BIN / "chatctl"
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

        tail = connect(socks["carol"], timeout=None).tail(last=0, follow=True)
        shown = 0

        def show_until(count: int) -> None:
            nonlocal shown
            while shown < count:
                print("  " + message_line(next(tail)), flush=True)
                shown += 1

        for name, text in SCRIPT:
            with connect(socks[name]) as client:
                client.send(text)
            show_until(shown + 1)  # carol has it, so the next line causally follows it
        wait_for(
            lambda: all(history_size(s) == len(SCRIPT) for s in socks.values()),
            "the exchange to reach every node",
        )
        if args.script_only:
            return 0
        while True:
            show_until(shown + 1)
    except KeyboardInterrupt:
        print()
        return 0
    except ControlError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        codes = [d.stop() for d in reversed(daemons)]
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
