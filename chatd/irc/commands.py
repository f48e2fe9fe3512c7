"""The commands of a registered client (registration itself is ``session.py``'s)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chatd.core.node import NodeError
from chatd.irc import numerics as n
from chatd.irc.channel import CHANNEL, chat_text, is_channel
from chatd.irc.nicks import NICKLEN, fold, irc_nicks, is_valid_nick
from chatd.irc.node import nicks_of
from chatd.irc.numerics import CAPABILITIES, NETWORK, SERVER
from chatd.irc.parse import MAX_LINE_BYTES, IrcMessage, format_message

if TYPE_CHECKING:
    from chatd.irc.session import Session

# At most this many targets in one PRIVMSG (ISUPPORT MAXTARGETS).
MAX_TARGETS = 4
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
        self._handlers: dict[str, Callable[[IrcMessage], Awaitable[None]]] = {
            "CAP": self.cap,
            "PING": self.ping,
            "PONG": self.pong,
            "QUIT": self.quit,
            "PASS": self.again,
            "USER": self.again,
            "NICK": self.nick,
            "JOIN": self.join,
            "PART": self.part,
            "PRIVMSG": self.privmsg,
            "NOTICE": self.privmsg,
            "TAGMSG": self.ignore,
            "NAMES": self.names,
            "WHO": self.who,
            "WHOIS": self.whois,
            "TOPIC": self.topic,
            "MODE": self.mode,
            "LIST": self.list_channels,
            "MOTD": self.motd,
            "ISON": self.ison,
            "USERHOST": self.userhost,
            "AWAY": self.away,
        }

    async def handle(self, message: IrcMessage) -> None:
        handler = self._handlers.get(message.command)
        if handler is None:
            await self.s.numeric(n.ERR_UNKNOWNCOMMAND, message.command[:32], "Unknown command")
            return
        await handler(message)

    async def _need(self, message: IrcMessage, count: int) -> bool:
        if len(message.params) >= count and all(message.params[:count]):
            return True
        await self.s.numeric(n.ERR_NEEDMOREPARAMS, message.command, "Not enough parameters")
        return False

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
        async with s._burst:
            await self.s.relay.sync_members()

    # The channel --------------------------------------------------------------------------

    def _topic(self, count: int) -> str:
        members = "1 member" if count == 1 else f"{count} members"
        return (
            f"chat: {members}. History is transient: held in the members' memory only,"
            " gone when the last one leaves."
        )

    async def join(self, message: IrcMessage) -> None:
        if not await self._need(message, 1):
            return
        for name in message.params[0].split(",")[:MAX_TARGETS]:
            if name == "0":
                await self._part("")
            elif is_channel(name):
                if not self.s.joined:
                    async with self.s._burst:
                        await self._join()
            else:
                await self.s.numeric(
                    n.ERR_NOSUCHCHANNEL,
                    name[:64],
                    f"No such channel: this gateway has one, {CHANNEL}",
                )

    async def _join(self) -> None:
        s = self.s
        # Snapshot and flag with no await between: what is delivered from here on is
        # forwarded (not in ``shown``), what was delivered before is replayed below.
        history = s.node.history()
        s.shown = {m.id for m in history}
        s.joined = True
        await self.s.relay.sync_members(announce=False)
        s.known = {k: v for k, v in nicks_of(s.node).items() if k != s.node.node_id}
        await s.put(format_message(IrcMessage("JOIN", (CHANNEL,), s.own_mask)))
        await self._send_topic()
        await self._send_names()
        for m in history:
            await s.put_all(self.s.relay.message_lines(m))

    async def part(self, message: IrcMessage) -> None:
        if not await self._need(message, 1):
            return
        reason = message.params[1] if len(message.params) > 1 else ""
        for name in message.params[0].split(",")[:MAX_TARGETS]:
            if not is_channel(name):
                await self.s.numeric(n.ERR_NOSUCHCHANNEL, name[:64], "No such channel")
            elif not self.s.joined:
                await self.s.numeric(n.ERR_NOTONCHANNEL, CHANNEL, "You're not on that channel")
            else:
                await self._part(reason)

    async def _part(self, reason: str) -> None:
        s = self.s
        if not s.joined:
            return
        async with s._burst:
            s.joined = False
            s.known = {}
            s.shown = set()
            params = (CHANNEL, reason[:300]) if reason else (CHANNEL,)
            await s.put(format_message(IrcMessage("PART", params, s.own_mask)))

    async def _send_topic(self) -> None:
        count = len(self.s.node.members())
        await self.s.numeric(n.RPL_TOPIC, CHANNEL, self._topic(count))

    async def _send_names(self) -> None:
        s = self.s
        nicks = sorted(nicks_of(s.node).values(), key=fold)
        head = f":chatd 353 {s.nick} = {CHANNEL} :"
        row: list[str] = []
        for nick in nicks:
            if row and len(head) + len(" ".join([*row, nick])) + 2 > MAX_LINE_BYTES:
                await s.numeric(n.RPL_NAMREPLY, "=", CHANNEL, " ".join(row))
                row = []
            row.append(nick)
        if row:
            await s.numeric(n.RPL_NAMREPLY, "=", CHANNEL, " ".join(row))
        await s.numeric(n.RPL_ENDOFNAMES, CHANNEL, "End of /NAMES list")

    async def names(self, message: IrcMessage) -> None:
        target = message.params[0] if message.params else CHANNEL
        if is_channel(target):
            await self._send_names()
        else:
            await self.s.numeric(n.RPL_ENDOFNAMES, target[:64], "End of /NAMES list")

    async def topic(self, message: IrcMessage) -> None:
        if not await self._need(message, 1):
            return
        if not is_channel(message.params[0]):
            await self.s.numeric(n.ERR_NOSUCHCHANNEL, message.params[0][:64], "No such channel")
        elif len(message.params) > 1:
            await self.s.numeric(
                n.ERR_CHANOPRIVSNEEDED, CHANNEL, "The topic is read-only: it shows the discussion"
            )
        else:
            await self._send_topic()

    async def list_channels(self, message: IrcMessage) -> None:
        count = len(self.s.node.members())
        await self.s.numeric(n.RPL_LIST, CHANNEL, str(count), self._topic(count))
        await self.s.numeric(n.RPL_LISTEND, "End of /LIST")

    async def mode(self, message: IrcMessage) -> None:
        s = self.s
        if not await self._need(message, 1):
            return
        target, changes = message.params[0], message.params[1:]
        if is_channel(target):
            if not changes:
                await s.numeric(n.RPL_CHANNELMODEIS, CHANNEL, "+nt")
            elif changes[0].lstrip("+") == "b":
                await s.numeric(n.RPL_ENDOFBANLIST, CHANNEL, "End of channel ban list")
            else:
                await s.numeric(
                    n.ERR_CHANOPRIVSNEEDED, CHANNEL, "Channel modes cannot be changed here"
                )
        elif fold(target) == fold(s.nick):
            await s.numeric(n.RPL_UMODEIS, "+")
        elif target.startswith("#"):
            await s.numeric(n.ERR_NOSUCHCHANNEL, target[:64], "No such channel")
        else:
            await s.numeric(n.ERR_USERSDONTMATCH, "Cannot change mode for other users")

    # Who is here --------------------------------------------------------------------------

    def _members(self) -> dict[str, tuple[str, str]]:
        """fold(nick) -> (node-id, nick), and the names, for the current members."""
        members = self.s.node.members()
        nicks = irc_nicks(members)
        return {fold(nicks[i]): (i, nicks[i]) for i, _ in members}

    def _realname(self, node_id: str) -> str:
        for i, name in self.s.node.members():
            if i == node_id:
                return name
        return ""

    async def who(self, message: IrcMessage) -> None:
        s = self.s
        mask = message.params[0] if message.params else CHANNEL
        members = self._members()
        if is_channel(mask):
            chosen = sorted(members.values(), key=lambda m: fold(m[1]))
        else:
            chosen = [members[fold(mask)]] if fold(mask) in members else []
        for node_id, nick in chosen:
            await s.numeric(
                n.RPL_WHOREPLY,
                CHANNEL,
                node_id[:12],
                NETWORK,
                SERVER,
                nick,
                "H",
                f"0 {self._realname(node_id) or nick}",
            )
        await s.numeric(n.RPL_ENDOFWHO, mask[:64] or "*", "End of /WHO list")

    async def whois(self, message: IrcMessage) -> None:
        s = self.s
        if not await self._need(message, 1):
            return
        target = message.params[-1]
        found = self._members().get(fold(target))
        if found is None:
            await s.numeric(n.ERR_NOSUCHNICK, target[:NICKLEN], "No such nick")
        else:
            node_id, nick = found
            real = self._realname(node_id) or nick
            await s.numeric(n.RPL_WHOISUSER, nick, node_id[:12], NETWORK, "*", real)
            await s.numeric(n.RPL_WHOISSERVER, nick, SERVER, f"node {node_id}")
        await s.numeric(n.RPL_ENDOFWHOIS, target[:NICKLEN], "End of /WHOIS list")

    async def ison(self, message: IrcMessage) -> None:
        members = self._members()
        asked = " ".join(message.params).split()
        here = [members[fold(a)][1] for a in asked[:64] if fold(a) in members]
        await self.s.numeric(n.RPL_ISON, " ".join(here))

    async def userhost(self, message: IrcMessage) -> None:
        members = self._members()
        found = [members[fold(a)] for a in message.params[:5] if fold(a) in members]
        await self.s.numeric(
            n.RPL_USERHOST, " ".join(f"{nick}=+{i[:12]}@{NETWORK}" for i, nick in found)
        )

    async def away(self, message: IrcMessage) -> None:
        # Accepted so clients do not complain; other members are not told (chat has no away).
        if message.params and message.params[0]:
            await self.s.numeric(n.RPL_NOWAWAY, "You have been marked as being away")
        else:
            await self.s.numeric(n.RPL_UNAWAY, "You are no longer marked as being away")

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
