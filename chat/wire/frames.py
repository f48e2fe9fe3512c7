"""Node-to-node frames: one JSON object per websocket message, tagged by ``type``.

Field names follow the seed report (``node-id``, ``vector-clock``): attribute ``node_id``
is written ``node-id`` on the wire by the converter. Frame types: ONLY APPEND to
``FRAME_TYPES``; never change the meaning of an existing one.
"""

from __future__ import annotations

from typing import ClassVar

from attrs import field, frozen

from chat.wire import bounds as b

# 2: links are TLS 1.3 with a group secret, and `auth` proves over both public keys
# (chat-peer-v2); a node of version 1 is told the versions differ, not a misleading reason.
# 3: ``nodes`` says why members went (``departed``), ``rename`` exists, and names are
# validated (chat.names): a version-2 node would refuse those frames, so the handshake says so.
PROTOCOL_VERSION = 3
# A state-transfer chunk holds at most this many messages (the frame cap binds first).
MAX_DISCUSSION_MESSAGES = 8192
# The metadata of a field added within a protocol version: the converter writes it only
# when it differs from its default, so a node that predates the field (and refuses
# unknown fields) still decodes every frame whose value is the default (chat.wire.codec).
OMIT_IF_DEFAULT = "omit-if-default"
ADDED_LATER = {OMIT_IF_DEFAULT: True}


@frozen
class MemberRecord:
    """A member of the discussion as the coordinator knows it. ``reachable``: whether
    peers can dial its ``public-address`` (the director dialed it back); false for a node
    that can only dial out, such as one at home behind NAT. ``observed-address``: the IP
    the director saw it come from ("" if unknown): dial-out-only members that share one
    are behind the same NAT, in one home."""

    node_id: str = field(validator=b.ID)
    name: str = field(validator=b.NAME)
    address: str = field(validator=b.ADDRESS)
    public_address: str = field(validator=b.ADDRESS)
    priority: int = field(default=0, validator=b.PRIORITY)
    reachable: bool = field(default=True, metadata=ADDED_LATER)
    observed_address: str = field(default="", validator=b.ADDRESS, metadata=ADDED_LATER)


@frozen
class Hello:
    """First frame on every connection, sent by both ends at once.

    ``nonce`` is fresh per connection; the proof over both nonces follows in ``auth``.
    ``public-key`` is the node's Ed25519 key; ``node-id`` must be its fingerprint.
    ``reachable`` and ``observed-address`` as in ``MemberRecord``.
    """

    TYPE: ClassVar[str] = "hello"
    protocol_version: int = field(validator=b.COUNT)
    node_id: str = field(validator=b.ID)
    name: str = field(validator=b.NAME)
    address: str = field(validator=b.ADDRESS)
    public_address: str = field(validator=b.ADDRESS)
    priority: int = field(validator=b.PRIORITY)
    term: int = field(validator=b.TERM)
    nonce: str = field(validator=b.DIGEST)
    public_key: str = field(validator=b.KEY)
    secure: bool
    reachable: bool = field(default=True, metadata=ADDED_LATER)
    observed_address: str = field(default="", validator=b.ADDRESS, metadata=ADDED_LATER)


@frozen
class Auth:
    """Second frame, once the peer's hello is in.

    ``proof``: HMAC-SHA256 with the group secret over both node-ids and both nonces ("" when
    running ``--insecure``). ``signature``: Ed25519 over the same material, proving the
    sender holds the key behind its node-id.
    """

    TYPE: ClassVar[str] = "auth"
    proof: str = field(validator=b.DIGEST)
    signature: str = field(validator=b.SIGNATURE)


@frozen
class Message:
    """A chat message. Signed by its origin, so any relay of it can be checked."""

    TYPE: ClassVar[str] = "message"
    id: str = field(validator=b.ID)
    node_id: str = field(validator=b.ID)
    name: str = field(validator=b.NAME)
    timestamp: str = field(validator=b.TIMESTAMP)
    message: str = field(validator=b.TEXT)
    vector_clock: dict[str, int] = field(validator=b.CLOCK)
    public_key: str = field(validator=b.KEY)
    signature: str = field(validator=b.SIGNATURE)


@frozen
class Join:
    """Newcomer (or a returning member) → coordinator, after the handshake: add me.

    ``vector-clock`` is what the node already holds, so state transfer sends only the rest.
    """

    TYPE: ClassVar[str] = "join"
    vector_clock: dict[str, int] = field(factory=dict, validator=b.CLOCK)


@frozen
class Leave:
    """A node tells its peers it is leaving for good."""

    TYPE: ClassVar[str] = "leave"
    node_id: str = field(validator=b.ID)
    term: int = field(validator=b.TERM)


@frozen
class Election:
    TYPE: ClassVar[str] = "election"
    node_id: str = field(validator=b.ID)
    term: int = field(validator=b.TERM)


@frozen
class Vote:
    TYPE: ClassVar[str] = "vote"
    ok: bool
    term: int = field(validator=b.TERM)
    node_id: str = field(default="", validator=b.ID)


@frozen
class UpdateCoordinator:
    """The coordinator of ``term`` is ``coordinator``, reachable at ``address``.

    Sent by an election's winner, by a leaving coordinator naming its successor, and in
    answer to a frame of an older term; flooded along the overlay on first acceptance.
    ``signature`` is ``signer``'s Ed25519 signature (``public-key`` is its key) over the
    claim: the coordinator itself, or for a hand-over the coordinator it replaces. So a
    relayed claim is checkable, and no member can claim the role for another node.
    """

    TYPE: ClassVar[str] = "update-coordinator"
    coordinator: str = field(validator=b.ID)
    term: int = field(validator=b.TERM)
    address: str = field(default="", validator=b.ADDRESS)
    signer: str = field(default="", validator=b.ID)
    public_key: str = field(default="", validator=b.KEY)
    signature: str = field(default="", validator=b.SIGNATURE)


@frozen
class Nodes:
    """Coordinator → all, after any membership change: members and the whole overlay.

    ``version`` counts the coordinator's changes within its term, so a member can tell a
    late copy from the latest.
    """

    TYPE: ClassVar[str] = "nodes"
    node: list[MemberRecord] = field(validator=b.max_len(b.MAX_MEMBERS))
    neighbours: dict[str, list[str]] = field(validator=b.OVERLAY)
    term: int = field(validator=b.TERM)
    coordinator: str = field(validator=b.ID)
    version: int = field(default=0, validator=b.COUNT)
    # Members the coordinator removed in this term and why ("left" or "timed-out"), so
    # every node can tell a clean leave from a failure (chatd.core.presence).
    departed: dict[str, str] = field(factory=dict, validator=b.DEPARTED)


@frozen
class Rename:
    """Member -> coordinator over its authenticated link: call me ``name`` from now on.

    Only ever about the sender, so a member can rename nobody but itself."""

    TYPE: ClassVar[str] = "rename"
    name: str = field(validator=b.NAME)


@frozen
class DiscussionRequest:
    """Send me every message my clock does not cover; and, for each origin whose chain hash
    in ``chains`` differs from yours, all of that origin's messages."""

    TYPE: ClassVar[str] = "discussion-request"
    vector_clock: dict[str, int] = field(validator=b.CLOCK)
    chains: dict[str, str] = field(factory=dict, validator=b.HASHES)


@frozen
class Discussion:
    """State transfer, one chunk: messages in canonical (hence causal) order."""

    TYPE: ClassVar[str] = "discussion"
    messages: list[Message] = field(factory=list, validator=b.max_len(MAX_DISCUSSION_MESSAGES))


@frozen
class Heartbeat:
    """Liveness and anti-entropy: ``digest`` is the sender's delivered vector clock and
    ``hash`` a hash of exactly which messages it delivered, so two nodes with one clock but
    different messages under one id (an equivocation) notice it."""

    TYPE: ClassVar[str] = "heartbeat"
    node_id: str = field(validator=b.ID)
    term: int = field(validator=b.TERM)
    digest: dict[str, int] = field(validator=b.CLOCK)
    hash: str = field(default="", validator=b.DIGEST)


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
    | Rename
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
        Rename,
    )
}
