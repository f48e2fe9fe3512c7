"""The commands of a registered client (registration itself is ``session.py``'s)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chatd.core.node import NodeError
from chatd.irc import numerics as n
from chatd.irc.channel import CHANNEL, chat_text, is_channel
from chatd.irc.channel_commands import MAX_TARGETS, ChannelCommands
from chatd.irc.member_commands import MemberCommands
from chatd.irc.nicks import NICKLEN, fold, is_valid_nick
from chatd.irc.numerics import CAPABILITIES, NETWORK, SERVER
from chatd.irc.parse import IrcMessage, format_message

if TYPE_CHECKING:
    from chatd.irc.session import Session

MOTD = (
    "This is a chat node's IRC gateway. The discussion is one channel: /join #chat",
    "History is transient: it lives in the members' memory and is gone when the last leaves.",
    "Your nick is this node's name; /nick NEW renames the node for everyone.",
)


class Closed(Exception):
    """End the session; ``str()`` is said to the client (ERROR) and logged."""


class Commands:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        channel, members = ChannelCommands(session), MemberCommands(session)
        self._members = members.members
        self._handlers: dict[str, Callable[[IrcMessage], Awaitable[None]]] = {
            "CAP": self.cap,
            "PING": self.ping,
            "PONG": self.pong,
            "QUIT": self.quit,
            "PASS": self.again,
            "USER": self.again,
            "NICK": self.nick,
            "JOIN": channel.join,
            "PART": channel.part,
            "PRIVMSG": self.privmsg,
            "NOTICE": self.privmsg,
            "TAGMSG": self.ignore,
            "NAMES": channel.names,
            "WHO": members.who,
            "WHOIS": members.whois,
            "TOPIC": channel.topic,
            "MODE": channel.mode,
            "LIST": channel.list_channels,
            "MOTD": self.motd,
            "ISON": members.ison,
            "USERHOST": members.userhost,
            "AWAY": members.away,
        }

    async def handle(self, message: IrcMessage) -> None:
        handler = self._handlers.get(message.command)
        if handler is None:
            await self.s.numeric(n.ERR_UNKNOWNCOMMAND, message.command[:32], "Unknown command")
            return
        await handler(message)

    # Connection ---------------------------------------------------------------------------

    async def cap(self, message: IrcMessage) -> None:
        s = self.s
        sub = message.params[0].upper() if message.params else ""
        target = s.nick
        if sub == "LS":
            if not s.registered:
                s.hold_registration(True)
            reply = ("LS", " ".join(CAPABILITIES))
        elif sub == "LIST":
            reply = ("LIST", " ".join(sorted(s.caps)))
        elif sub == "REQ":
            if not s.registered:
                s.hold_registration(True)
            wanted = message.params[1].split() if len(message.params) > 1 else []
            if wanted and all(c.removeprefix("-") in CAPABILITIES for c in wanted):
                for cap in wanted:
                    if cap.startswith("-"):
                        s.caps.discard(cap[1:])
                    else:
                        s.caps.add(cap)
                reply = ("ACK", " ".join(wanted))
            else:
                reply = ("NAK", " ".join(wanted)[:400])
        elif sub == "END":
            s.hold_registration(False)
            return
        else:
            await s.numeric(n.ERR_INVALIDCAPCMD, sub[:32] or "*", "Invalid CAP command")
            return
        await s.put(format_message(IrcMessage("CAP", (target, *reply), SERVER)))

    async def ping(self, message: IrcMessage) -> None:
        token = message.params[0] if message.params else SERVER
        await self.s.put(format_message(IrcMessage("PONG", (SERVER, token), SERVER)))

    async def pong(self, message: IrcMessage) -> None:
        pass  # any line counts as a sign of life (Session._converse)

    async def ignore(self, message: IrcMessage) -> None:
        pass

    async def quit(self, message: IrcMessage) -> None:
        raise Closed("quit")

    async def again(self, message: IrcMessage) -> None:
        await self.s.numeric(n.ERR_ALREADYREGISTERED, "You may not reregister")

    async def welcome(self, renamed: bool) -> None:
        s, version = self.s, self.s.version
        await s.numeric(n.RPL_WELCOME, f"Welcome to chat, {s.nick}: the discussion is {CHANNEL}")
        await s.numeric(n.RPL_YOURHOST, f"Your host is {SERVER}, running chatd {version}")
        await s.numeric(n.RPL_CREATED, f"This gateway was started {self.started}")
        await s.numeric(n.RPL_MYINFO, SERVER, version or "chatd", "i", "nt")
        await s.numeric(
            n.RPL_ISUPPORT,
            "CASEMAPPING=ascii",
            "CHANLIMIT=#:1",
            "CHANMODES=,,,nt",
            "CHANNELLEN=32",
            "CHANTYPES=#",
            f"MAXTARGETS={MAX_TARGETS}",
            f"NETWORK={NETWORK}",
            f"NICKLEN={NICKLEN}",
            "PREFIX=()",
            "TOPICLEN=390",
            "UTF8ONLY",
            "are supported by this server",
        )
        await self.motd(IrcMessage("MOTD"))
        if renamed:
            await s.notice(f"Your nick here is this node's name, {s.nick}.")

    async def motd(self, message: IrcMessage) -> None:
        await self.s.numeric(n.RPL_MOTDSTART, f"- {SERVER} message of the day -")
        for line in MOTD:
            await self.s.numeric(n.RPL_MOTD, f"- {line}")
        await self.s.numeric(n.RPL_ENDOFMOTD, "End of /MOTD command.")

    # Nick ---------------------------------------------------------------------------------

    async def nick(self, message: IrcMessage) -> None:
        s = self.s
        if not message.params or not message.params[0]:
            await s.numeric(n.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        wanted = message.params[0]
        if wanted == s.nick:
            return
        if not is_valid_nick(wanted):
            await s.numeric(n.ERR_ERRONEUSNICKNAME, wanted[:NICKLEN], "Erroneous nickname")
            return
        try:
            s.node.rename(wanted)
        except NodeError as exc:
            code = n.ERR_ERRONEUSNICKNAME if exc.code == "bad-request" else n.ERR_UNKNOWNERROR
            await s.numeric(code, wanted, f"Not renamed: {exc}")
            return
        s.log.info("irc.rename")
        async with s.burst:
            await self.s.relay.sync_members()

    # Talking ------------------------------------------------------------------------------

    async def privmsg(self, message: IrcMessage) -> None:
        s = self.s
        if not message.params or not message.params[0]:
            await s.numeric(n.ERR_NORECIPIENT, f"No recipient given ({message.command})")
            return
        if len(message.params) < 2 or not message.params[1]:
            await s.numeric(n.ERR_NOTEXTTOSEND, "No text to send")
            return
        members = self._members()
        for target in message.params[0].split(",")[:MAX_TARGETS]:
            if not is_channel(target):
                if fold(target) in members:
                    why = f"Private messages are not supported: talk in {CHANNEL}"
                    await s.numeric(n.ERR_CANNOTSENDTOCHAN, target[:NICKLEN], why)
                else:
                    await s.numeric(n.ERR_NOSUCHNICK, target[:NICKLEN], "No such nick/channel")
                continue
            if not s.joined:
                why = f"You are not in {CHANNEL}: /join {CHANNEL} first"
                await s.numeric(n.ERR_CANNOTSENDTOCHAN, CHANNEL, why)
                continue
            text = chat_text(message.params[1])
            if text is None:
                await s.numeric(n.ERR_CANNOTSENDTOCHAN, CHANNEL, "Only CTCP ACTION is relayed")
                continue
            try:
                sent = s.node.send(text)
            except NodeError as exc:
                s.log.info("irc.send_refused", code=exc.code, reason=str(exc))
                if exc.code == "too-large":
                    await s.numeric(n.ERR_INPUTTOOLONG, f"Not sent: {exc}")
                else:
                    await s.numeric(n.ERR_CANNOTSENDTOCHAN, CHANNEL, f"Not sent: {exc}")
                continue
            s.sent.add(sent.id)
