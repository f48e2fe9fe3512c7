"""ngIRCd as the reference: one server (``ngircd -n -f CONF``, config in a temp dir, a free
127.0.0.1 port, ``MaxConnectionsIP = 0``, an ``[Operator]`` block) and N raw-socket clients
in one channel, as a load ``System``.

Every sender OPERs and sets user mode +F (relaxed flood protection): without it ngIRCd
throttles a client to ~2.6 msg/s. One reader thread receives for all clients (selectors)
and stamps each PRIVMSG with the host monotonic clock when its bytes are read.
"""

from __future__ import annotations

import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path

from bench.common import Tracker, free_port, payload
from chat_testing.process import Process
from chat_testing.waiting import GaveUp, wait_until

CHANNEL = "#bench"
OPER = ("bench", "bench-oper-pw")
CONFIG = """[Global]
\tName = bench.irc
\tInfo = chat benchmark reference
\tListen = 127.0.0.1
\tPorts = {port}
\tMotdPhrase = bench
\tPidFile = {dir}/ngircd.pid
[Limits]
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\tPingTimeout = 600
\tPongTimeout = 60
[Options]
\tDNS = no
\tIdent = no
\tPAM = no
[Operator]
\tName = {oper}
\tPassword = {password}
"""


def version() -> str:
    exe = shutil.which("ngircd")
    if exe is None:
        return "not installed"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


class IrcClient:
    def __init__(self, port: int, nick: str, oper: bool) -> None:
        self.nick = nick
        self.origin = nick
        self.lock = threading.Lock()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.write(f"NICK {nick}\r\nUSER {nick} 0 * :bench")
        self.expect(b" 001 ")
        if oper:
            self.write(f"OPER {OPER[0]} {OPER[1]}")
            self.expect(b" 381 ")
            self.write(f"MODE {nick} +F")
            self.expect(b"MODE " + nick.encode())
        self.write(f"JOIN {CHANNEL}")
        self.expect(b" 366 ")

    def write(self, line: str) -> None:
        with self.lock:
            self.sock.sendall(line.encode() + b"\r\n")

    def expect(self, needle: bytes, timeout: float = 10.0) -> None:
        """Read (blocking, during setup) until a line containing ``needle``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                if line.startswith(b"PING"):
                    self.write("PONG" + line[4:].decode())
                parts = line.split(b" ", 2)
                if len(parts) > 1 and len(parts[1]) == 3 and parts[1][:1] == b"4":
                    raise RuntimeError(f"{self.nick}: IRC error {line!r}")
                if needle in line:
                    return
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{self.nick}: server closed")
            self.buf += chunk
        raise TimeoutError(f"{self.nick}: no {needle!r}")

    def send(self, scheduled_ns: int, seq: int) -> str:
        mid = f"{self.nick}-{seq}"
        self.write(f"PRIVMSG {CHANNEL} :{payload(mid, scheduled_ns)}")
        return mid

    def close(self) -> None:
        """Senders are reused across runs; the group closes the sockets."""


class IrcGroup:
    """An ngIRCd server and ``n`` clients in one channel; ``close`` stops everything."""

    name = "ngircd"

    def __init__(self, n: int, senders: int = 4) -> None:
        self.n = n
        self.tracker = Tracker(n - 1)
        self.clients: list[IrcClient] = []
        self._stop = threading.Event()
        self._dir = tempfile.TemporaryDirectory(prefix="bench-irc-")
        self.port = free_port()
        conf = Path(self._dir.name) / "ngircd.conf"
        conf.write_text(
            CONFIG.format(port=self.port, dir=self._dir.name, oper=OPER[0], password=OPER[1])
        )
        exe = shutil.which("ngircd")
        if exe is None:
            raise RuntimeError("ngircd is not installed (bench/setup.sh)")
        self.server = Process("ngircd", [exe, "-n", "-f", str(conf)], max_lines=10_000)
        self._reader: threading.Thread | None = None
        try:
            self._wait_listening()
            # ngIRCd holds each registration ~2 s (penalty): register the clients at once
            with ThreadPoolExecutor(min(n, 32)) as pool:
                futures = [
                    pool.submit(IrcClient, self.port, f"b{i}", i < senders) for i in range(n)
                ]
                self.clients.extend(f.result() for f in futures)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        except BaseException:
            self.close()
            raise

    def _wait_listening(self, timeout: float = 10.0) -> None:
        def listening() -> bool:
            if not self.server.alive:
                raise GaveUp("ngircd exited")
            with socket.create_connection(("127.0.0.1", self.port), 0.5):
                return True

        try:
            wait_until(listening, timeout, "ngircd to listen")
        except AssertionError as exc:  # WaitTimeout or GaveUp
            raise RuntimeError(f"ngircd did not start ({exc}):\n{self.server.describe()}") from None

    def _read(self) -> None:
        sel = selectors.DefaultSelector()
        for client in self.clients:
            sel.register(client.sock, selectors.EVENT_READ, client)
        marker = f"PRIVMSG {CHANNEL} :".encode()
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(0.2):
                    owner: IrcClient = key.data
                    try:
                        chunk = owner.sock.recv(262144)
                    except BlockingIOError:
                        continue
                    now = time.monotonic_ns()
                    if not chunk:
                        sel.unregister(owner.sock)
                        continue
                    *lines, owner.buf = (owner.buf + chunk).split(b"\r\n")
                    for line in lines:
                        at = line.find(marker)
                        if at >= 0:
                            mid = line[at + len(marker) :].split(b" ", 1)[0].decode()
                            self.tracker.delivered(owner.nick, mid, now)
                        elif line.startswith(b"PING"):
                            with suppress(OSError):
                                owner.write("PONG" + line[4:].decode())
        finally:
            sel.close()

    def reset(self) -> Tracker:
        self.tracker = Tracker(self.n - 1)
        return self.tracker

    def sender(self, index: int) -> IrcClient:
        return self.clients[index % self.n]

    def pids(self) -> list[int]:
        return [self.server.pid]

    def close(self) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join(5)
        for client in self.clients:
            with suppress(OSError):
                client.sock.close()
        self.server.terminate(10.0)
        self._dir.cleanup()

    def __enter__(self) -> IrcGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
