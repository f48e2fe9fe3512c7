"""Fuzzing the decoders that take bytes from outside: peer frames, control requests, IRC lines.

For any input the decoder returns a valid object or raises ``DecodeError``; nothing else
escapes, it never hangs, and what it accepts re-encodes to bytes that decode to the same
object. ``check_frame``, ``check_request`` and ``check_lines`` are that invariant, one
function per decoder; ``FRAME_BOUNDS`` and ``REQUEST_BOUNDS`` hold the documented ranges an
accepted value must lie in (add one with each range check the wire gains).

Inputs are made by a seeded loop, not hypothesis: it runs 3,000-8,000 inputs a second
where hypothesis's structured strategies (tests/core/test_wire.py) manage 200-500. Each
starts as a valid frame or request of a random type; 15% stay valid (in random JSON
styles), 40% get structure-aware changes (wrong types, huge/negative/beyond-64-bit
numbers, null, junk, lone surrogates, NaN, deep nesting, duplicate, extra or missing
keys), 37% raw byte mutations of the encoding, 8% are random bytes; plus fixed worst
cases at the size cap. Every input is reproducible from ``seed`` and its index::

    python -m chat_testing.fuzz [--cases N] [--seed S] [--decoder NAME] [--case I]

The package, one module per job: ``common`` (time limits, a decoder's entry), ``json_values``
(well-typed bodies, junk, JSON text in random styles), ``mutate`` (changes to trees and
bytes), one module per decoder family (``wire``: peer frames and control requests, with
their bounds and worst cases; ``lines``: the control line reader; ``auth``: the director's
proof header and the secret file; ``irc``: IRC lines), and ``runner`` (the table of
decoders, a seeded run, the command line).
"""

from __future__ import annotations

from chat_testing.fuzz.common import Decoder
from chat_testing.fuzz.irc import check_irc_line, irc_line_input
from chat_testing.fuzz.lines import Stream, check_lines
from chat_testing.fuzz.runner import DECODERS, Result, case_input, main, run
from chat_testing.fuzz.wire import FRAME_BOUNDS, REQUEST_BOUNDS, bound, check_frame, check_request

__all__ = [
    "DECODERS",
    "FRAME_BOUNDS",
    "REQUEST_BOUNDS",
    "Decoder",
    "Result",
    "Stream",
    "bound",
    "case_input",
    "check_frame",
    "check_irc_line",
    "check_lines",
    "check_request",
    "irc_line_input",
    "main",
    "run",
]
