"""The IRC gateway's listener: ``chatd --irc HOST:PORT`` (README: IRC gateway).

One TCP listener; at most ``clients_max`` sessions at once (one more is told ERROR and
closed). The password is generated at start (``secrets.token_urlsafe``) and held in
memory only, or read once from ``--irc-password-file``; ``chatctl status`` shows it.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from importlib.metadata import version

import trio
from attrs import field, frozen

from chat.files import TooLarge, read_bounded
from chat.log import Logger
from chatd.irc.node import GatewayNode
from chatd.irc.parse import IrcMessage, format_message
from chatd.irc.session import Limits, Session
from chatd.log_limit import LogLimiter

# A password file larger than this is refused: it holds one short line.
MAX_PASSWORD_FILE_BYTES = 1024
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256


class IrcOptionError(ValueError):
    """A bad --irc address or password file; the message says why (for the operator)."""


@frozen
class IrcSettings:
    host: str
    port: int
    password: str
    clients_max: int = 8
    limits: Limits = field(factory=Limits)


def parse_address(value: str, allow_remote: bool) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) -> (host, port). A host that is not a loopback
    address is refused unless ``allow_remote``: the gateway is for the node's owner."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise IrcOptionError(f"--irc {value}: give HOST:PORT, e.g. 127.0.0.1:6667")
    host = host.removeprefix("[").removesuffix("]")
    if not host:
        raise IrcOptionError(f"--irc {value}: the host is missing (e.g. 127.0.0.1:6667)")
    if not allow_remote and not is_loopback(host):
        raise IrcOptionError(
            f"--irc {value}: {host} is not a loopback address; anyone who can reach it"
            " and guesses the password could talk as you. Add --irc-allow-remote if"
            " that is what you want"
        )
    return host, int(port_text)


def load_password(path: str | None) -> str:
    """The password from ``path`` (its first line, stripped), else a new random one."""
    if path is None:
        return secrets.token_urlsafe(18)
    try:
        data = read_bounded(path, MAX_PASSWORD_FILE_BYTES)
    except OSError as exc:
        raise IrcOptionError(f"--irc-password-file {path}: {exc.strerror or exc}") from None
    except TooLarge:
        raise IrcOptionError(
            f"--irc-password-file {path}: over {MAX_PASSWORD_FILE_BYTES} bytes;"
            " it holds one line, the password"
        ) from None
    try:
        password = data.decode("utf-8").split("\n", 1)[0].strip()
    except UnicodeDecodeError:
        raise IrcOptionError(f"--irc-password-file {path}: not UTF-8") from None
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise IrcOptionError(
            f"--irc-password-file {path}: the first line must be a password of"
            f" {MIN_PASSWORD_CHARS}-{MAX_PASSWORD_CHARS} characters"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in password):
        raise IrcOptionError(
            f"--irc-password-file {path}: the password may not contain spaces or controls"
        )
    return password


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class IrcGateway:
    def __init__(self, node: GatewayNode, settings: IrcSettings, log: Logger) -> None:
        self.node = node
        self.settings = settings
        self.log = log
        self.limited = LogLimiter(log)
        self.address = ""  # HOST:PORT once listening (the real port for port 0)
        self.clients = 0
        self._version = version("chat")

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        s = self.settings
        listeners = await trio.open_tcp_listeners(s.port, host=s.host, backlog=64)
        sockname = listeners[0].socket.getsockname()
        host = f"[{sockname[0]}]" if listeners[0].socket.family == socket.AF_INET6 else sockname[0]
        self.address = f"{host}:{sockname[1]}"
        if not is_loopback(s.host):
            self.log.warning(
                "irc.remote",
                address=self.address,
                detail="the IRC gateway listens beyond loopback; its password guards it",
            )
        self.log.info("irc.ready", address=self.address, clients_max=s.clients_max)
        task_status.started(self.address)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            peer = stream.socket.getpeername()
            remote = f"{peer[0]}:{peer[1]}"
        except OSError:
            remote = "?"
        try:
            async with stream:
                if self.clients >= self.settings.clients_max:
                    self.limited.warning("irc.busy", clients=self.clients, remote=remote)
                    line = format_message(
                        IrcMessage("ERROR", (f"Too many clients ({self.clients}); try later",))
                    )
                    with trio.move_on_after(1):
                        await stream.send_all(line)
                    return
                self.clients += 1
                try:
                    await self._serve(stream, remote)
                finally:
                    self.clients -= 1
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except* Exception:
            self.log.exception("irc.failed", remote=remote)

    async def _serve(self, stream: trio.SocketStream, remote: str) -> None:
        log = self.log.bind(remote=remote)
        log.info("irc.connected", clients=self.clients)
        session = Session(
            self.node,
            stream,
            self.settings.password,
            self.settings.limits,
            log,
            self.limited,
            self._version,
            remote,
        )
        reason = await session.run()
        log.info("irc.closed", reason=reason, registered=session.registered)
