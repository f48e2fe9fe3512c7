"""The node's deliveries turned into lines for one client: messages and membership.

The client's view of the channel is kept in ``Session.known`` (node-id -> the nick it was
told); every change of the membership is told as the difference from it: QUIT for a
member gone, NICK for one whose nick changed, JOIN for one new, in that order. A
departure's presence event gives its reason (``left``, ``timed out``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chat.wire import Message
from chatd.core.presence import Presence
from chatd.irc.channel import CHANNEL, server_time, text_lines
from chatd.irc.nicks import irc_nicks, is_valid_nick
from chatd.irc.node import nicks_of
from chatd.irc.numerics import SERVER
from chatd.irc.parse import IrcMessage, format_message

if TYPE_CHECKING:
    from chatd.irc.session import Session


class Relay:
    def __init__(self, session: Session) -> None:
        self.s = session

    async def deliver(self, event: Message | Presence) -> None:
        """One thing the node delivered: a message, or a presence event."""
        s = self.s
        if isinstance(event, Message):
            await self.sync_members()
            if not s.joined or event.id in s.shown:
                return
            if event.id in s.sent:
                s.sent.discard(event.id)
                if "echo-message" not in s.caps:
                    return
            await s.put_all(self.message_lines(event))
            return
        if isinstance(event, Presence):
            await self._presence(event)
        await self.sync_members()

    async def _presence(self, event: Presence) -> None:
        """Departures with their reason; a new coordinator as a notice. Arrivals and
        renames are the membership's difference (``sync_members``)."""
        s = self.s
        if not s.joined:
            return
        if event.event in ("left", "timed-out"):
            nick = s.known.get(event.node_id)
            here = {i for i, _ in s.node.members()}
            if nick is not None and event.node_id not in here:
                del s.known[event.node_id]
                reason = "timed out" if event.event == "timed-out" else "left"
                line = IrcMessage("QUIT", (reason,), s.mask(event.node_id, nick))
                await s.put(format_message(line))
        elif event.event == "coordinator":
            nick = s.nick if event.node_id == s.node.node_id else s.known.get(event.node_id)
            if nick is not None:
                text = f"{nick} is now the coordinator"
                await s.put(format_message(IrcMessage("NOTICE", (CHANNEL, text), SERVER)))

    def message_lines(self, m: Message) -> list[bytes]:
        s = self.s
        nick = s.nick if m.node_id == s.node.node_id else self._nick_for(m.node_id, m.name)
        tags: list[tuple[str, str]] = []
        if "message-tags" in s.caps:
            tags.append(("msgid", m.id))
        if "server-time" in s.caps and (when := server_time(m.timestamp)) is not None:
            tags.append(("time", when))
        return text_lines(s.mask(m.node_id, nick), m.message, tuple(tags))

    def _nick_for(self, node_id: str, name: str) -> str:
        known = self.s.known.get(node_id)
        if known is not None:
            return known
        # A member who has left (history): its nick among those here now.
        members = [(i, x) for i, x in self.s.node.members() if i != node_id]
        return irc_nicks([*members, (node_id, name)])[node_id]

    async def sync_members(self, announce: bool = True) -> None:
        """Tell the client what changed in the membership since it was last told."""
        s = self.s
        nicks = nicks_of(s.node)
        own = nicks.get(s.node.node_id)
        if own is not None and own != s.nick and is_valid_nick(own):
            await s.put(format_message(IrcMessage("NICK", (own,), s.own_mask)))
            s.nick = own
        if not s.joined or not announce:
            return
        now = {k: v for k, v in nicks.items() if k != s.node.node_id}
        for node_id, nick in list(s.known.items()):
            if node_id not in now:
                del s.known[node_id]
                await s.put(format_message(IrcMessage("QUIT", ("left",), s.mask(node_id, nick))))
        for node_id, nick in now.items():
            old = s.known.get(node_id)
            if old is not None and old != nick:
                s.known[node_id] = nick
                await s.put(format_message(IrcMessage("NICK", (nick,), s.mask(node_id, old))))
        for node_id, nick in now.items():
            if node_id not in s.known:
                s.known[node_id] = nick
                await s.put(format_message(IrcMessage("JOIN", (CHANNEL,), s.mask(node_id, nick))))
