"""Node-to-node frames: one JSON object per websocket message, tagged by ``type``.

Field names follow the seed report (``node-id``, ``vector-clock``): attribute ``node_id``
is written ``node-id`` on the wire by the converter. Frame types: ONLY APPEND to
``FRAME_TYPES``; never change the meaning of an existing one.
"""

from __future__ import annotations

from typing import ClassVar

from attrs import field, frozen

PROTOCOL_VERSION = 1


@frozen
class MemberRecord:
    """A member of the discussion as the coordinator knows it."""

    node_id: str
    name: str
    address: str
    public_address: str
    priority: int = 0


@frozen
class Hello:
    """First frame on every connection, sent by both ends at once.

    ``nonce`` is fresh per connection; the proof over both nonces follows in ``auth``.
    ``public-key`` is the node's Ed25519 key; ``node-id`` must be its fingerprint.
    """

    TYPE: ClassVar[str] = "hello"
    protocol_version: int
    node_id: str
    name: str
    address: str
    public_address: str
    priority: int
    term: int
    nonce: str
    public_key: str
    secure: bool


@frozen
class Auth:
    """Second frame, once the peer's hello is in.

    ``proof``: HMAC-SHA256 with the group secret over both node-ids and both nonces ("" when
    running ``--insecure``). ``signature``: Ed25519 over the same material, proving the
    sender holds the key behind its node-id.
    """

    TYPE: ClassVar[str] = "auth"
    proof: str
    signature: str


@frozen
class Message:
    """A chat message. Signed by its origin, so any relay of it can be checked."""

    TYPE: ClassVar[str] = "message"
    id: str
    node_id: str
    name: str
    timestamp: str
    message: str
    vector_clock: dict[str, int]
    public_key: str
    signature: str


@frozen
class Join:
    """Newcomer (or a returning member) → coordinator, after the handshake: add me.

    ``vector-clock`` is what the node already holds, so state transfer sends only the rest.
    """

    TYPE: ClassVar[str] = "join"
    vector_clock: dict[str, int] = field(factory=dict)


@frozen
class Leave:
    """A node tells its peers it is leaving for good."""

    TYPE: ClassVar[str] = "leave"
    node_id: str
    term: int


@frozen
class Election:
    TYPE: ClassVar[str] = "election"
    node_id: str
    term: int


@frozen
class Vote:
    TYPE: ClassVar[str] = "vote"
    ok: bool
    term: int
    node_id: str = ""


@frozen
class UpdateCoordinator:
    """The coordinator of ``term`` is ``coordinator``, reachable at ``address``.

    Sent by an election's winner, by a leaving coordinator naming its successor, and in
    answer to a frame of an older term; flooded along the overlay on first acceptance.
    """

    TYPE: ClassVar[str] = "update-coordinator"
    coordinator: str
    term: int
    address: str = ""


@frozen
class Nodes:
    """Coordinator → all, after any membership change: members and the whole overlay.

    ``version`` counts the coordinator's changes within its term, so a member can tell a
    late copy from the latest.
    """

    TYPE: ClassVar[str] = "nodes"
    node: list[MemberRecord]
    neighbours: dict[str, list[str]]
    term: int
    coordinator: str
    version: int = 0


@frozen
class DiscussionRequest:
    """Send me every message my clock does not cover."""

    TYPE: ClassVar[str] = "discussion-request"
    vector_clock: dict[str, int]


@frozen
class Discussion:
    """State transfer, one chunk: messages in canonical (hence causal) order."""

    TYPE: ClassVar[str] = "discussion"
    messages: list[Message] = field(factory=list)


@frozen
class Heartbeat:
    """Liveness and anti-entropy: ``digest`` is the sender's delivered vector clock."""

    TYPE: ClassVar[str] = "heartbeat"
    node_id: str
    term: int
    digest: dict[str, int]


Frame = (
    Hello
    | Auth
    | Message
    | Join
    | Leave
    | Election
    | Vote
    | UpdateCoordinator
    | Nodes
    | DiscussionRequest
    | Discussion
    | Heartbeat
)

FRAME_TYPES: dict[str, type[Frame]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Auth,
        Message,
        Join,
        Leave,
        Election,
        Vote,
        UpdateCoordinator,
        Nodes,
        DiscussionRequest,
        Discussion,
        Heartbeat,
    )
}
