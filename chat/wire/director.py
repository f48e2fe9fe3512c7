"""Bodies of the director's HTTP endpoints."""

from __future__ import annotations

from typing import Literal

from attrs import field, frozen

from chat.wire import bounds as b

# A node that understands ``JoinAdvice.reachable`` and ``observed-address`` sends this
# header (value "1") with ``/register_node``: only then does the director dial it back and
# add them, so a chatd that predates them (and refuses unknown fields) gets today's answer.
DIAL_BACK_HEADER = "X-Chat-Dial-Back"


@frozen
class CoordinatorRecord:
    """``POST /register_coordinator`` body, and what ``GET /`` returns as JSON."""

    node_id: str = field(validator=b.ID)
    address: str = field(validator=b.ADDRESS)
    public_address: str = field(validator=b.ADDRESS)
    term: int = field(validator=b.TERM)


@frozen
class NodeRegistration:
    """``POST /register_node`` body: a newcomer asks where to go."""

    node_id: str = field(validator=b.ID)
    address: str = field(validator=b.ADDRESS)
    public_address: str = field(validator=b.ADDRESS)


@frozen
class JoinAdvice:
    """``/register_node`` answer: join ``coordinator``, start the discussion yourself, or
    ask again shortly (the director has just started and may not know the coordinator).

    Asked for with ``DIAL_BACK_HEADER`` (else left out, and a node assumes the defaults):
    ``observed-address`` is the IP address the director saw the request come from (a
    home router's, for a node behind NAT), and ``reachable`` whether the director could
    connect to the node's advertised ``public-address`` (``director.dialback``);
    ``coordinator-reachable`` false when the coordinator named was found dial-out-only
    when it registered (a reachable newcomer that cannot link to it may take over)."""

    action: Literal["join", "start", "wait"]
    coordinator: CoordinatorRecord | None = None
    term: int = field(default=0, validator=b.TERM)
    observed_address: str = field(default="", validator=b.ADDRESS)
    reachable: bool = True
    coordinator_reachable: bool = True


@frozen
class Unregistration:
    """``POST /unregister_coordinator``: the last node leaves; forget the coordinator."""

    node_id: str = field(validator=b.ID)
    term: int = field(validator=b.TERM)
