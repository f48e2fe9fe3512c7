"""What the IRC gateway needs of the node, as one small interface (``GatewayNode``), and
its implementation over the running ``Runtime``. Tests drive sessions with a fake one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import trio

from chat.names import display_names
from chat.wire import Message
from chatd.core.effects import NodeError, Role
from chatd.core.presence import Presence
from chatd.irc.nicks import irc_nicks
from chatd.runtime import Runtime


class GatewayNode(Protocol):
    @property
    def node_id(self) -> str: ...

    def members(self) -> list[tuple[str, str]]:
        """(node-id, display name) of every current member, this node included
        (chat.names.display_names)."""

    def history(self) -> list[Message]: ...

    def send(self, text: str) -> Message:
        """Send as this node's user; raises ``NodeError`` when refused."""

    def rename(self, name: str) -> str:
        """Rename this node; the name now. Raises ``NodeError`` when refused."""

    def subscribe(
        self, on_drop: Callable[[], None]
    ) -> trio.MemoryReceiveChannel[Message | Presence]:
        """Every message (and presence event) delivered from now on; ``on_drop`` is called
        when the reader falls too far behind and the channel is closed."""


def nicks_of(node: GatewayNode) -> dict[str, str]:
    return irc_nicks(node.members())


class RuntimeNode:
    """``GatewayNode`` over the node's runtime: the same send path (flood control, size
    limit) as the control socket's ``send``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def node_id(self) -> str:
        return self.runtime.node.node_id

    def members(self) -> list[tuple[str, str]]:
        snap = self.runtime.node.snapshot()
        # This node by the name it has now: a member's rename shows in the membership only
        # once the coordinator has taken it, and the client should see its NICK at once.
        names = {m.node_id: m.name for m in snap.members}
        names[snap.node_id] = snap.name
        return list(display_names(names.items()).items())

    def history(self) -> list[Message]:
        return self.runtime.node.messages()

    def send(self, text: str) -> Message:
        if self.runtime.node.role is Role.LEAVING:
            raise NodeError("leaving", "this node is leaving")
        return self.runtime.send_text(text)

    def rename(self, name: str) -> str:
        self.runtime.rename(name)
        return self.runtime.node.me.name

    def subscribe(
        self, on_drop: Callable[[], None]
    ) -> trio.MemoryReceiveChannel[Message | Presence]:
        return self.runtime.fanout.subscribe(on_drop=on_drop, presence=True)
