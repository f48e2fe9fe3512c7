"""Timers and limits of a node, as data, in named profiles. Built once in ``__main__``."""

from __future__ import annotations

from attrs import evolve, frozen

from chat.wire import MAX_FRAME_BYTES, MAX_TEXT_BYTES


@frozen
class Config:
    # Every interval the coordinator sends each linked peer a heartbeat (its term, and the
    # delivered clock for anti-entropy), unless another frame went to that peer within half
    # of it: members hear a live coordinator several times per failure_timeout.
    heartbeat_interval: float = 0.25
    # A coordinator not heard from for this long is taken for dead: 3 missed heartbeats,
    # so one slow scheduling round is not a failure.
    failure_timeout: float = 0.75
    # Each member sends the coordinator a heartbeat this often; the coordinator drops a
    # member silent for member_timeout. Slower than failover: a dead member only leaves
    # `who` a little later, and the coordinator is not woken 10 times a second per member.
    member_heartbeat_interval: float = 1.0
    member_timeout: float = 3.0
    # Digests (the delivered clock and history hash, in a heartbeat) go to the overlay
    # neighbours and the coordinator at most this often, and only while they differ from
    # what a peer last said or was told: an idle discussion sends none. A node behind a
    # peer asks it for the rest at most this often, so an answer in flight is not asked
    # for again.
    repair_interval: float = 0.5
    # A link this node opened and no longer needs (not the coordinator, not an overlay
    # neighbour, not a higher member to ask in an election) is closed once it has been
    # unneeded, and quiet both ways, this long: no flapping during a membership change.
    link_linger: float = 2.0
    # A candidate waits this long for a higher node's vote before it takes over.
    election_timeout: float = 0.2
    # After a higher node voted, wait this long for its announcement, then elect again.
    announce_timeout: float = 0.75
    # The coordinator re-registers with the director this often (the seed: "every few
    # seconds"); a restarted director learns the coordinator within one interval.
    director_interval: float = 1.0
    # Timeout of one HTTP call to the director.
    director_timeout: float = 3.0
    # A node that never joined stops (exit 4 or 5) once the director has refused its proof
    # (a wrong group secret, a clock off) on every attempt for this long, at least this
    # many times: a misconfigured node must not wait forever, and one refusal during a
    # director's reload must not stop it. Once joined, a node never stops for this.
    director_refusals_to_stop: int = 3
    director_refusal_span: float = 2.0
    # Groups up to this size are a full mesh; larger ones a ring with chords.
    full_mesh_max: int = 6
    # Renames (chatctl nick): a node allows itself, and the coordinator allows each member,
    # rename_burst at once and rename_rate a second on average. A member whose name in the
    # membership is not the one it chose asks the coordinator again this often at most.
    rename_rate: float = 0.2
    rename_burst: int = 3
    rename_retry: float = 2.0
    # Largest chat text, UTF-8 bytes.
    max_text_bytes: int = MAX_TEXT_BYTES
    # Largest websocket message accepted from a peer.
    max_frame_bytes: int = MAX_FRAME_BYTES
    # A state-transfer chunk stays below this many (estimated) bytes.
    discussion_chunk_bytes: int = 256 * 1024
    # Frames queued for one peer before the node gives up on it (a peer that stops
    # reading is disconnected rather than allowed to stall the node).
    peer_queue_frames: int = 4096
    # An incoming connection must finish the websocket upgrade and hello + auth within
    # this time of its TCP accept (one deadline for the whole path); a dialed one, hello +
    # auth. Generous for a LAN round trip or three, short for a descriptor held by a stranger.
    handshake_timeout: float = 5.0
    # Incoming connections not yet authenticated, at most, on the peer port; one more is
    # closed as soon as it is accepted. Honest peers need a handful at once (a group's
    # members dialing after a failover); 64 is far more than that, and 64 descriptors held
    # for handshake_timeout each are far below the usual limit of 1024, so strangers who
    # open connections and never finish cannot exhaust the node's descriptors or tasks.
    # Authenticated links are not counted.
    max_unauthenticated_peers: int = 64
    # Reconnect backoff bounds, doubling from min to max.
    dial_backoff_min: float = 0.05
    dial_backoff_max: float = 2.0
    # A newcomer that has not been admitted by then asks the director again.
    join_timeout: float = 5.0
    # On leave, how long to wait for queued frames to reach peers.
    leave_flush_timeout: float = 2.0
    # Queued deliveries per `tail --follow` client before it is cut off as too slow (the
    # connection is closed at once, backlog and all): 100 s of a busy discussion.
    tail_queue_messages: int = 10_000
    # Control connections the kernel queues for chatd to accept (Linux caps it at
    # net.core.somaxconn, 4096 by default): a burst of clients while the node is busy waits
    # instead of being refused with EAGAIN.
    control_backlog: int = 1024
    # Control clients served at once; one more is answered `busy` and closed. Each costs a
    # task and a descriptor, so hundreds of stuck clients cannot exhaust the node's.
    control_clients_max: int = 256
    # Of those, `tail --follow` clients at once (each one is a delivery queue).
    tail_followers_max: int = 64
    # Once a request line has started, the rest must come within this time, else the
    # client is answered `bad-request` and closed: half a line cannot hold a slot forever.
    # A connection between requests (no partial line) may stay idle.
    control_line_timeout: float = 10.0
    # An answer (other than a `tail --follow` stream) the client does not take within this
    # time ends the connection: a client that stops reading cannot hold a slot forever.
    control_write_timeout: float = 10.0

    # Bounds on what one member can make a node hold or do (README: Trust model, Limits).
    # A message more than this many sequence numbers ahead of what is delivered from its
    # origin is not held but refused; anti-entropy brings it once the gap is filled.
    held_window: int = 256
    # At most this many messages held back in all (4 KiB each: 16 MiB at worst).
    max_held_messages: int = 4096
    # A message's clock may name at most this many origins the node does not know (not a
    # member, never delivered from): members whose join is still in flight.
    clock_unknown_margin: int = 8
    # A term more than this far above the highest one seen is refused: honest terms grow
    # by one per election, and a term near the top of its range would end elections.
    max_term_step: int = 1000
    # Flood control: a node lets its user send this many messages per second, with bursts
    # of flood_burst; receivers allow an origin twice that on its own link and drop (and
    # count) the rest, which anti-entropy fetches later at its own pace.
    flood_rate: float = 10.0
    flood_burst: int = 50
    # This many refused frames from one peer within refusal_window close its link.
    strike_limit: int = 20
    refusal_window: float = 10.0
    # Repeated refusals are logged once, then as one summary line with a count this often.
    refusal_log_interval: float = 5.0


# Defaults: a crashed coordinator is replaced in about one second on a LAN.
LAN = Config()
# For in-process clusters under a virtual clock: same rules, faster timers.
TEST = evolve(
    LAN,
    heartbeat_interval=0.05,
    repair_interval=0.25,
    failure_timeout=0.3,
    member_heartbeat_interval=0.1,
    member_timeout=0.3,
    link_linger=1.0,
    election_timeout=0.1,
    announce_timeout=0.3,
    director_interval=0.5,
    join_timeout=2.0,
    handshake_timeout=1.0,
    # In-process clusters send bursts of hundreds of messages; flood tests set their own.
    flood_rate=10_000.0,
    flood_burst=10_000,
)

PROFILES = {"lan": LAN, "test": TEST}
