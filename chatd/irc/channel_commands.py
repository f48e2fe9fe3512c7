"""The commands about the one channel: JOIN, PART, NAMES, TOPIC, LIST, MODE."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.irc import numerics as n
from chatd.irc.channel import CHANNEL, is_channel
from chatd.irc.nicks import fold
from chatd.irc.node import nicks_of
from chatd.irc.parse import MAX_LINE_BYTES, IrcMessage, format_message

if TYPE_CHECKING:
    from chatd.irc.session import Session

# At most this many targets in one command (ISUPPORT MAXTARGETS).
MAX_TARGETS = 4


class ChannelCommands:
    def __init__(self, session: Session) -> None:
        self.s = session

    def _topic(self, count: int) -> str:
        members = "1 member" if count == 1 else f"{count} members"
        return (
            f"chat: {members}. History is transient: held in the members' memory only,"
            " gone when the last one leaves."
        )

    async def join(self, message: IrcMessage) -> None:
        if not await self.s.need(message, 1):
            return
        for name in message.params[0].split(",")[:MAX_TARGETS]:
            if name == "0":
                await self._part("")
            elif is_channel(name):
                if not self.s.joined:
                    async with self.s.burst:
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
        if not await self.s.need(message, 1):
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
        async with s.burst:
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
        if not await self.s.need(message, 1):
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
        if not await self.s.need(message, 1):
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
