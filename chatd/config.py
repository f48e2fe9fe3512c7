"""Timers and limits of a node, as data, in named profiles. Built once in ``__main__``."""

from __future__ import annotations

from attrs import evolve, frozen

from chatd.wire import MAX_FRAME_BYTES, MAX_TEXT_BYTES


@frozen
class Config:
    # Anti-entropy: every interval a node sends its delivered clock to each peer it is
    # linked to; a peer that is behind asks for what it misses. Bounds how long a message
    # lost in flight stays missing.
    heartbeat_interval: float = 1.0
    # The coordinator re-registers with the director this often (the seed: "every few
    # seconds"); a restarted director learns the coordinator within one interval.
    director_interval: float = 2.0
    # Timeout of one HTTP call to the director.
    director_timeout: float = 3.0
    # Groups up to this size are a full mesh; larger ones a ring with chords.
    full_mesh_max: int = 6
    # Largest chat text, UTF-8 bytes.
    max_text_bytes: int = MAX_TEXT_BYTES
    # Largest websocket message accepted from a peer.
    max_frame_bytes: int = MAX_FRAME_BYTES
    # A state-transfer chunk stays below this many (estimated) bytes.
    discussion_chunk_bytes: int = 256 * 1024
    # Frames queued for one peer before the node gives up on it (a peer that stops
    # reading is disconnected rather than allowed to stall the node).
    peer_queue_frames: int = 4096
    # A connection must finish hello + auth within this time.
    handshake_timeout: float = 5.0
    # Reconnect backoff bounds, doubling from min to max.
    dial_backoff_min: float = 0.05
    dial_backoff_max: float = 2.0
    # A newcomer that has not been admitted by then asks the director again.
    join_timeout: float = 5.0
    # On leave, how long to wait for queued frames to reach peers.
    leave_flush_timeout: float = 2.0
    # Queued deliveries per `tail --follow` client before it is cut off as too slow.
    tail_queue_messages: int = 10_000


LAN = Config()
# For tests in one process or on one machine: same rules, faster timers.
TEST = evolve(
    LAN, heartbeat_interval=0.2, director_interval=0.5, join_timeout=2.0, handshake_timeout=1.0
)

PROFILES = {"lan": LAN, "test": TEST}
