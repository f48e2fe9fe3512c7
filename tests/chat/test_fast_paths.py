"""The cheap versions of what every received frame costs agree with the reference ones:
the decoding converter with its detailed twin, ``message_id`` with ``uuid.uuid5``, the
one-loop clock validator with the generic one."""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat.identity import _MESSAGE_ID_NAMESPACE, Identity, message_id, verify_bytes
from chat.wire import FRAME_TYPES, Heartbeat, Message, bounds, codec


@given(st.text(max_size=80), st.integers(-(2**70), 2**70))
def test_message_id_is_the_uuid5_of_origin_and_sequence(node_id: str, seq: int) -> None:
    assert message_id(node_id, seq) == str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, f"{node_id}/{seq}"))


def test_message_id_over_many_origins_and_sequences() -> None:
    for n in range(200):
        node_id = f"{n * 7919:032x}"
        for seq in (0, 1, 2, n, 10**6 + n, 2**53 - 1):
            want = str(uuid.uuid5(_MESSAGE_ID_NAMESPACE, f"{node_id}/{seq}"))
            assert message_id(node_id, seq) == want


scalars = (
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=6)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


def field_values(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with some of ``cls``'s wire names, values of any JSON kind (clocks mostly
    well-formed, so that the clock fast path is taken and refused)."""
    names = [a.name.replace("_", "-") for a in attrs.fields(cls)]
    clock = st.dictionaries(st.text(max_size=70), st.integers(-2, 2**54) | scalars, max_size=4)
    return st.dictionaries(st.sampled_from([*names, "extra"]), json_values | clock)


def outcome(conv: Any, obj: Any, cls: type) -> tuple[str, Any]:
    try:
        return "ok", conv.structure(obj, cls)
    except Exception as exc:
        return "refused", type(exc).__name__ if conv is codec._explaining else None


@pytest.mark.parametrize(
    "cls", [Message, Heartbeat, *FRAME_TYPES.values()], ids=lambda c: c.__name__
)
@given(data=st.data())
def test_the_decoding_converter_accepts_exactly_what_its_detailed_twin_accepts(
    cls: type, data: st.DataObject
) -> None:
    obj = data.draw(field_values(cls))
    fast, detailed = outcome(codec.converter, obj, cls), outcome(codec._explaining, obj, cls)
    assert fast[0] == detailed[0]
    if fast[0] == "ok":
        assert fast[1] == detailed[1]


@given(st.dictionaries(st.text(max_size=70), st.integers(-2, 2**54), max_size=6))
def test_the_clock_validator_refuses_as_the_generic_one(clock: dict[str, int]) -> None:
    generic = bounds.by_node_id(bounds.MAX_CLOCK_ENTRIES, bounds._count_problem)
    field = attrs.fields(Heartbeat).digest
    errors: list[str | None] = []
    for check in (bounds.CLOCK, generic):
        try:
            check(None, field, clock)
            errors.append(None)
        except ValueError as exc:
            errors.append(str(exc))
    assert errors[0] == errors[1]


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=200))
def test_libsodium_signs_as_cryptography_did(seed: bytes, data: bytes) -> None:
    """Ed25519 is deterministic: the same seed signs the same bytes alike in both."""
    ident = Identity.generate(seed)
    expected = base64.b64encode(ident.private_key.sign(data)).decode()
    assert ident.sign_bytes(data) == expected
    assert verify_bytes(ident.public_key, data, expected)


def test_a_node_without_tls_does_not_load_cryptography() -> None:
    """cryptography is ~8 MB of a node's memory; only TLS and --director-cert need it."""
    code = (
        "import sys, chatd.__main__, chatd.daemon, chatd.runtime, chatd.transport\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'cryptography']\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
