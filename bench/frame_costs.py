"""CPU per call of what every received frame costs apart from I/O: decode and encode of
the hot frames (``message``, ``heartbeat``), the message id check, the signature check.

Warm, in one process, CPU time (the machine is shared), best of repeats: a floor, as
in a busy cluster caches are cold.

    .venv/bin/python -m bench.frame_costs [--number N] [--repeats R]
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Callable

from chat.identity import Identity, message_id, verify
from chat.wire import Frame, Heartbeat, decode_frame, encode_frame

CLOCK_ENTRIES = 10  # a vector clock of a group of ten


def costs(number: int, repeats: int) -> dict[str, float]:
    """µs per call of each step, best of ``repeats`` runs of ``number`` calls."""
    ident = Identity.generate(bytes(32))
    clock = {f"{i:032x}": i for i in range(1, CLOCK_ENTRIES)}
    clock[ident.node_id] = 5
    message = ident.sign("alice", "2026-01-01T00:00:00.000Z", "x" * 200, clock)
    beat = Heartbeat(node_id=ident.node_id, term=3, digest=clock, hash="ab" * 16)

    def best(fn: Callable[[], object]) -> float:
        runs = timeit.repeat(fn, time.process_time, number=number, repeat=repeats)
        return min(runs) / number * 1e6

    def frame(f: Frame) -> tuple[Callable[[], object], Callable[[], object]]:
        data = encode_frame(f)
        return (lambda: decode_frame(data)), (lambda: encode_frame(f))

    (decode_message, encode_message), (decode_beat, encode_beat) = frame(message), frame(beat)
    seqs = iter(range(10**9))
    return {
        "decode message": best(decode_message),
        "encode message": best(encode_message),
        "decode heartbeat": best(decode_beat),
        "encode heartbeat": best(encode_beat),
        "message_id (same)": best(lambda: message_id(ident.node_id, 12345)),
        "message_id (new)": best(lambda: message_id(ident.node_id, next(seqs))),
        "verify message": best(lambda: verify(message)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for step, us in costs(args.number, args.repeats).items():
        print(f"{step:20} {us:7.2f} us")


if __name__ == "__main__":
    main()
