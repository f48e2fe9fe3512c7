"""What ``status``, ``who``, ``history`` and ``tail`` show: views built from the core's
``Snapshot`` and what the shell itself knows (links, ciphers, the director, deliveries)."""

from __future__ import annotations

from typing import Literal

from chat.names import display_name, display_names
from chat.wire import (
    IrcView,
    MemberView,
    Message,
    MessageView,
    PeerView,
    PresenceView,
    Status,
    TaggedMessage,
    TaggedPresence,
)
from chatd.core.presence import Presence
from chatd.runtime import Runtime

NO_REACHABLE_MEMBER = (
    "no member can be dialed (all are behind NAT): newcomers cannot join until a node"
    " with a reachable address does (README: Across networks)"
)


def status_of(runtime: Runtime, irc: IrcView | None = None) -> Status:
    snap = runtime.node.snapshot()
    now = runtime.now()
    names = {m.node_id: m.name for m in snap.members}
    peers = []
    for peer, hello in sorted(snap.peers.items()):
        link = runtime.links.get(peer)
        cipher = link.channel.cipher if link is not None else None
        heard = round(now - snap.last_heard.get(peer, now), 3)
        # The membership has the name now; the hello, the one the link was opened under.
        peers.append(PeerView(peer, names.get(peer, hello.name), heard, cipher is not None, cipher))
    return Status(
        node_id=snap.node_id,
        name=snap.name,
        address=snap.address,
        public_address=snap.public_address,
        role=snap.role.value,
        coordinator=snap.coordinator,
        term=snap.term,
        members=list(snap.members),
        neighbours=list(snap.neighbours),
        vector_clock=dict(snap.vector_clock),
        messages=snap.messages,
        peers=peers,
        director=runtime.director_error or "ok",
        secure=runtime.keyring is not None and all(p.encrypted for p in peers),
        counters=dict(snap.counters),
        irc=irc,
        reachable=snap.reachable,
        warning=NO_REACHABLE_MEMBER if snap.reachable_members == 0 else "",
        observed_address=runtime.observed_address,
    )


def members_of(runtime: Runtime) -> list[MemberView]:
    snap = runtime.node.snapshot()
    now = runtime.now()
    shown = display_names((m.node_id, m.name) for m in snap.members)
    views = []
    for member in snap.members:
        heard = snap.last_heard.get(member.node_id)
        spoke = runtime.last_delivered.get(member.node_id)
        link: Literal["self", "up", "down"] = "self"
        if member.node_id != snap.node_id:
            link = "up" if member.node_id in snap.peers else "down"
        views.append(
            MemberView(
                node_id=member.node_id,
                name=member.name,
                address=member.address,
                public_address=member.public_address,
                priority=member.priority,
                role="coordinator" if member.node_id == snap.coordinator else "member",
                link=link,
                last_heard=None if heard is None else round(now - heard, 3),
                display=shown.get(member.node_id, member.name),
                idle=None if spoke is None else round(now - spoke, 3),
                reachable=member.reachable,
            )
        )
    return views


def _member_names(runtime: Runtime) -> list[tuple[str, str]]:
    return [(m.node_id, m.name) for m in runtime.node.snapshot().members]


def history_of(runtime: Runtime) -> list[MessageView]:
    """Every message held, each author under its current display name (an author who is
    no longer a member is told apart from members named alike)."""
    members = _member_names(runtime)
    shown = display_names(members)
    views = []
    for message in runtime.node.messages():
        if message.node_id not in shown:
            shown[message.node_id] = display_name(message.node_id, message.name, members)
        views.append(MessageView.of(message, shown[message.node_id]))
    return views


def view_of(runtime: Runtime, message: Message) -> MessageView:
    """A message under the name it was signed with, told apart from the members'."""
    members = _member_names(runtime)
    return MessageView.of(message, display_name(message.node_id, message.name, members))


def line_of(
    runtime: Runtime, item: Message | Presence, tagged: bool
) -> MessageView | TaggedMessage | TaggedPresence:
    """One line of a ``tail``: a message as it always was, or (``tagged``, the ``events``
    form) a message or a presence event tagged with its kind."""
    if isinstance(item, Message):
        view = view_of(runtime, item)
        return TaggedMessage(message=view) if tagged else view
    shown = display_name(item.node_id, item.name, _member_names(runtime))
    return TaggedPresence(
        presence=PresenceView(item.event, item.node_id, item.name, shown, item.old_name, item.at)
    )
