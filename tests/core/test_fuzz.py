"""The short run of the decoder fuzzer (``make fuzz`` is the long one), and the harness's own
checks: a crash is reported with its input, and a bound added to the table is enforced."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from chat.wire import DecodeError, Heartbeat, encode_frame
from chat_testing import fuzz

# FUZZ_SEED=N replays a run; by default every run tries new inputs.
SEED = int(os.environ.get("FUZZ_SEED", random.SystemRandom().randrange(2**32)))


@pytest.mark.parametrize("name", sorted(fuzz.DECODERS))
def test_decoder_survives_fuzzing(name: str) -> None:
    result = fuzz.run(fuzz.DECODERS[name], 2000, SEED)
    assert result.inputs >= 2000
    assert not result.failures, f"FUZZ_SEED={SEED}: {result.failures[0]}"


def test_same_seed_same_inputs() -> None:
    for decoder in fuzz.DECODERS.values():
        assert fuzz.case_input(decoder, 1, 5) == fuzz.case_input(decoder, 1, 5)


def test_a_crash_is_reported_with_its_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(data: Any, limit: int = 0) -> Any:
        if b"heartbeat" in (data if isinstance(data, bytes) else data.encode("utf-8", "replace")):
            raise KeyError("digest")
        raise DecodeError("fine")

    monkeypatch.setattr(fuzz.wire, "decode_frame", broken)
    assert fuzz.main(["--cases", "200", "--seed", "3", "--decoder", "frame"]) == 1
    out, err = capsys.readouterr()
    assert "seed 3" in out
    assert "crashes" in out
    assert "FAILED frame case" in err
    assert "heartbeat" in err
    assert "KeyError: 'digest'" in err


def test_a_bound_in_the_table_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = encode_frame(Heartbeat("n1", 3, {"n1": 7}))
    assert fuzz.check_frame(frame) is not None
    small = fuzz.bound("*.digest{}", lambda count: count < 5, "below 5")
    monkeypatch.setattr(fuzz.wire, "FRAME_BOUNDS", [*fuzz.FRAME_BOUNDS, small])
    with pytest.raises(AssertionError, match=r"heartbeat\.digest\{\} = 7 is not below 5"):
        fuzz.check_frame(frame)
