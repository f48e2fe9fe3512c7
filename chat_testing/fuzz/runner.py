"""Running the fuzzer: the table of decoders, a seeded run of one, and the command line."""

from __future__ import annotations

import argparse
import faulthandler
import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from chat.wire import MAX_FRAME_BYTES
from chat_testing.fuzz import __doc__ as fuzz_doc
from chat_testing.fuzz.auth import check_proof, check_secret_file, proof_input, secret_file_input
from chat_testing.fuzz.common import HANG_SECONDS, Decoder, short, take_slowest
from chat_testing.fuzz.irc import check_irc_line, irc_line_input
from chat_testing.fuzz.lines import Stream, check_lines, stream_input, streams_at_cap
from chat_testing.fuzz.wire import cap_cases, check_frame, check_request, frame_input, request_input
from chatd.control.server import MAX_REQUEST_BYTES

DECODERS = {
    d.name: d
    for d in [
        Decoder("frame", frame_input, check_frame, cap_cases(b"type", MAX_FRAME_BYTES)),
        Decoder("request", request_input, check_request, cap_cases(b"op", MAX_REQUEST_BYTES)),
        Decoder("line-reader", stream_input, check_lines, streams_at_cap()),
        Decoder("director-proof", proof_input, check_proof, [("long", "v2 t=" + "9" * 8000)]),
        Decoder(
            "secret-file",
            secret_file_input,
            check_secret_file,
            [("many lines", b"a-group-secret-of-32-bytes-xxxxx\n" * 2000)],
        ),
        Decoder(
            "irc-line",
            irc_line_input,
            check_irc_line,
            [
                ("at the read cap", b"@" + b"a=" * 2047 + b" PRIVMSG #chat :" + b"x" * 494),
                ("many parameters", b"X" + b" a" * 254),
                ("escapes", b"@a=" + b"\\" * 4000 + b" PING x"),
            ],
        ),
    ]
}


@dataclass
class Failure:
    decoder: str
    case: str
    data: Any
    error: str

    def __str__(self) -> str:
        return (
            f"{self.decoder} case {self.case}: input ({_size(self.data)}) "
            f"{short(self.data, 400)}\n{self.error}"
        )


@dataclass
class Result:
    decoder: str
    inputs: int = 0
    accepted: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    failures: list[Failure] = field(default_factory=list)


def _size(data: Any) -> str:
    if isinstance(data, Stream):
        return f"{len(data.data)} bytes in {len(data.chunks)} chunks, limit {data.limit}"
    return f"{len(data)} {'bytes' if isinstance(data, bytes) else 'chars'}"


def case_input(decoder: Decoder, seed: int, case: int) -> Any:
    """Input number ``case`` of a run with ``seed``: the same on every machine."""
    return decoder.make(random.Random(f"{seed}:{decoder.name}:{case}"))


def _run_one(decoder: Decoder, case: str, data: Any, result: Result) -> None:
    try:
        accepted = decoder.check(data)
    except Exception:
        result.failures.append(Failure(decoder.name, case, data, traceback.format_exc()))
        accepted = None
    result.inputs += 1
    result.accepted += accepted is not None and accepted != []


def run(decoder: Decoder, cases: int, seed: int, only: int | None = None) -> Result:
    """``cases`` generated inputs and every size-cap case (or just case ``only``)."""
    result = Result(decoder.name)
    take_slowest()
    start = time.perf_counter()
    numbers = range(cases) if only is None else [only]
    try:
        # Re-armed per batch (arming starts a thread); fd 2 is stderr even under capture.
        for first in range(0, len(numbers), 1000):
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=2)
            for case in numbers[first : first + 1000]:
                _run_one(decoder, str(case), case_input(decoder, seed, case), result)
        if only is None:
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=2)
            for name, data in decoder.cap_cases:
                _run_one(decoder, f"at the size cap: {name}", data, result)
    finally:
        faulthandler.cancel_dump_traceback_later()
    result.seconds = time.perf_counter() - start
    result.slowest = take_slowest()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chat_testing.fuzz", description=fuzz_doc)
    parser.add_argument("--cases", type=int, default=100_000, help="inputs per decoder")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--decoder", choices=sorted(DECODERS), action="append")
    parser.add_argument("--case", type=int, default=None, help="run only this input")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"fuzz seed {seed} (same inputs again: --seed {seed})", flush=True)
    crashed = False
    for name in args.decoder or list(DECODERS):
        result = run(DECODERS[name], args.cases, seed, args.case)
        for failure in result.failures[:5]:
            print(f"FAILED {failure}", file=sys.stderr)
        print(
            f"{name:<12} {result.inputs:>8} inputs ({result.accepted} accepted)"
            f"  {len(result.failures)} crashes  {result.seconds:6.1f} s"
            f"  (slowest decode {result.slowest * 1000:.0f} ms)",
            flush=True,
        )
        crashed |= bool(result.failures)
    if crashed:
        print(f"reproduce one: --seed {seed} --decoder NAME --case N", file=sys.stderr)
    return 1 if crashed else 0
