"""The commands that ask who is here: WHO, WHOIS, ISON, USERHOST (and AWAY, accepted)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.irc import numerics as n
from chatd.irc.channel import CHANNEL, is_channel
from chatd.irc.nicks import NICKLEN, fold, irc_nicks
from chatd.irc.numerics import NETWORK, SERVER
from chatd.irc.parse import IrcMessage

if TYPE_CHECKING:
    from chatd.irc.session import Session


class MemberCommands:
    def __init__(self, session: Session) -> None:
        self.s = session

    def members(self) -> dict[str, tuple[str, str]]:
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
        members = self.members()
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
        if not await self.s.need(message, 1):
            return
        target = message.params[-1]
        found = self.members().get(fold(target))
        if found is None:
            await s.numeric(n.ERR_NOSUCHNICK, target[:NICKLEN], "No such nick")
        else:
            node_id, nick = found
            real = self._realname(node_id) or nick
            await s.numeric(n.RPL_WHOISUSER, nick, node_id[:12], NETWORK, "*", real)
            await s.numeric(n.RPL_WHOISSERVER, nick, SERVER, f"node {node_id}")
        await s.numeric(n.RPL_ENDOFWHOIS, target[:NICKLEN], "End of /WHOIS list")

    async def ison(self, message: IrcMessage) -> None:
        members = self.members()
        asked = " ".join(message.params).split()
        here = [members[fold(a)][1] for a in asked[:64] if fold(a) in members]
        await self.s.numeric(n.RPL_ISON, " ".join(here))

    async def userhost(self, message: IrcMessage) -> None:
        members = self.members()
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
