"""The wire schema, pinned by golden JSON, and the strict decoder: bad input of any kind is a
``DecodeError`` with a reason, never another exception."""

from __future__ import annotations

import json
import typing
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat.names import name_problem
from chat.wire import (
    FRAME_TYPES,
    MAX_FRAME_BYTES,
    Auth,
    CoordinatorRecord,
    DecodeError,
    Discussion,
    DiscussionRequest,
    Election,
    ErrorBody,
    ErrorResponse,
    Frame,
    Heartbeat,
    Hello,
    HistoryRequest,
    HistoryResponse,
    IrcView,
    Join,
    JoinAdvice,
    Leave,
    LeaveRequest,
    MemberRecord,
    MemberView,
    Message,
    MessageView,
    NickRequest,
    NickResponse,
    NodeRegistration,
    Nodes,
    OkResponse,
    PeerView,
    PresenceView,
    Rename,
    Request,
    SendRequest,
    SendResponse,
    Status,
    StatusRequest,
    StatusResponse,
    TaggedMessage,
    TaggedPresence,
    TailEnd,
    TailRequest,
    Unregistration,
    UpdateCoordinator,
    Vote,
    WhoRequest,
    WhoResponse,
    decode_frame,
    decode_json,
    decode_request,
    encode,
    encode_frame,
    structure,
    unstructure,
)
from chat_testing.fuzz import check_frame, check_request

MEMBER = MemberRecord("n1", "alice", "ws://10.0.0.1:9000", "ws://alice.example:9000", 2)
MEMBER_JSON = (
    '{"node-id":"n1","name":"alice","address":"ws://10.0.0.1:9000",'
    '"public-address":"ws://alice.example:9000","priority":2}'
)
# A clock key with an underscore: node-ids are data and must never be renamed.
MESSAGE = Message(
    "id-1", "n1", "alice", "2024-01-01T00:00:00Z", "héllo", {"n1": 2, "n_2": 1}, "PK", "SIG"
)
MESSAGE_BODY = (
    '"id":"id-1","node-id":"n1","name":"alice","timestamp":"2024-01-01T00:00:00Z",'
    '"message":"héllo","vector-clock":{"n1":2,"n_2":1}'
)
MESSAGE_JSON = "{" + MESSAGE_BODY + ',"public-key":"PK","signature":"SIG"}'
VIEW_JSON = "{" + MESSAGE_BODY + ',"display":"alice"}'
RECORD = CoordinatorRecord("n1", "ws://10.0.0.1:9000", "ws://alice.example:9000", 3)
RECORD_JSON = (
    '{"node-id":"n1","address":"ws://10.0.0.1:9000",'
    '"public-address":"ws://alice.example:9000","term":3}'
)

GOLDEN_FRAMES: list[tuple[Frame, str]] = [
    (
        Hello(
            1, "n1", "alice", "ws://10.0.0.1:9000", "ws://a.example:9000", 2, 3, "no", "PK", True
        ),
        '{"type":"hello","protocol-version":1,"node-id":"n1","name":"alice",'
        '"address":"ws://10.0.0.1:9000","public-address":"ws://a.example:9000","priority":2,'
        '"term":3,"nonce":"no","public-key":"PK","secure":true}',
    ),
    (Auth("proof", "sig"), '{"type":"auth","proof":"proof","signature":"sig"}'),
    (MESSAGE, '{"type":"message",' + MESSAGE_JSON[1:]),
    (Join({"n1": 2}), '{"type":"join","vector-clock":{"n1":2}}'),
    (Leave("n1", 3), '{"type":"leave","node-id":"n1","term":3}'),
    (Election("n1", 3), '{"type":"election","node-id":"n1","term":3}'),
    (Vote(True, 3, "n2"), '{"type":"vote","ok":true,"term":3,"node-id":"n2"}'),
    (
        UpdateCoordinator("n2", 4, "ws://n2:1", "n1", "PK", "sig"),
        '{"type":"update-coordinator","coordinator":"n2","term":4,"address":"ws://n2:1",'
        '"signer":"n1","public-key":"PK","signature":"sig"}',
    ),
    (
        Nodes([MEMBER], {"n1": [], "n_2": ["n1"]}, 3, "n1", 5, {"n3": "timed-out"}),
        '{"type":"nodes","node":[' + MEMBER_JSON + '],"neighbours":{"n1":[],"n_2":["n1"]},'
        '"term":3,"coordinator":"n1","version":5,"departed":{"n3":"timed-out"}}',
    ),
    (
        DiscussionRequest({"n1": 1}, {"n1": "ab"}),
        '{"type":"discussion-request","vector-clock":{"n1":1},"chains":{"n1":"ab"}}',
    ),
    (Discussion([MESSAGE]), '{"type":"discussion","messages":[' + MESSAGE_JSON + "]}"),
    (
        Heartbeat("n1", 3, {"n1": 2}, "cd"),
        '{"type":"heartbeat","node-id":"n1","term":3,"digest":{"n1":2},"hash":"cd"}',
    ),
    (Rename("al"), '{"type":"rename","name":"al"}'),
]

# Fields added within a protocol version, at a value other than their default.
GOLDEN_ADDED: list[tuple[Frame, str]] = [
    (
        Hello(
            3,
            "n1",
            "al",
            "ws://192.168.1.5:8701",
            "ws://192.168.1.5:8701",
            0,
            1,
            "no",
            "PK",
            True,
            reachable=False,
        ),
        '{"type":"hello","protocol-version":3,"node-id":"n1","name":"al",'
        '"address":"ws://192.168.1.5:8701","public-address":"ws://192.168.1.5:8701",'
        '"priority":0,"term":1,"nonce":"no","public-key":"PK","secure":true,"reachable":false}',
    ),
]

GOLDEN_REQUESTS: list[tuple[Request, str]] = [
    (SendRequest("hi"), '{"op":"send","text":"hi"}'),
    (TailRequest(True, 5), '{"op":"tail","follow":true,"last":5,"events":false}'),
    (TailRequest(True, 5, True), '{"op":"tail","follow":true,"last":5,"events":true}'),
    (HistoryRequest(), '{"op":"history"}'),
    (StatusRequest(), '{"op":"status"}'),
    (WhoRequest(), '{"op":"who"}'),
    (LeaveRequest(), '{"op":"leave"}'),
    (NickRequest("al"), '{"op":"nick","name":"al"}'),
]

STATUS = Status(
    "n1",
    "alice",
    "ws://10.0.0.1:9000",
    "ws://alice.example:9000",
    "coordinator",
    "n1",
    3,
    [MEMBER],
    ["n2"],
    {"n1": 2},
    1,
    [PeerView("n2", "bob", 0.5, True, "TLSv1.3 TLS_AES_256_GCM_SHA384")],
    "http://127.0.0.1:8700",
    True,
    {"messages.relayed": 4},
    IrcView("127.0.0.1:6667", "pw"),
    False,
    "203.0.113.7",
)
STATUS_JSON = (
    '{"node-id":"n1","name":"alice","address":"ws://10.0.0.1:9000",'
    '"public-address":"ws://alice.example:9000","role":"coordinator","coordinator":"n1",'
    '"term":3,"members":[' + MEMBER_JSON + '],"neighbours":["n2"],"vector-clock":{"n1":2},'
    '"messages":1,"peers":[{"node-id":"n2","name":"bob","last-heard":0.5,"encrypted":true,'
    '"cipher":"TLSv1.3 TLS_AES_256_GCM_SHA384"}],'
    '"director":"http://127.0.0.1:8700","secure":true,"counters":{"messages.relayed":4},'
    '"irc":{"address":"127.0.0.1:6667","password":"pw"},"reachable":false,'
    '"observed-address":"203.0.113.7","warning":""}'
)

GOLDEN_BODIES: list[tuple[Any, str]] = [
    # Control responses.
    (OkResponse(), '{"ok":true}'),
    (TailEnd(), '{"end":"node-left"}'),
    (
        ErrorResponse(ErrorBody("bad-request", "unknown op")),
        '{"error":{"code":"bad-request","message":"unknown op"},"ok":false}',
    ),
    (SendResponse(MessageView.of(MESSAGE)), '{"message":' + VIEW_JSON + ',"ok":true}'),
    (HistoryResponse([MessageView.of(MESSAGE)]), '{"messages":[' + VIEW_JSON + '],"ok":true}'),
    (StatusResponse(STATUS), '{"status":' + STATUS_JSON + ',"ok":true}'),
    (
        WhoResponse(
            [MemberView("n1", "alice", "ws://a:1", "ws://a.example:1", 2, "coordinator", "up", 0.5)]
        ),
        '{"members":[{"node-id":"n1","name":"alice","address":"ws://a:1",'
        '"public-address":"ws://a.example:1","priority":2,"role":"coordinator","link":"up",'
        '"last-heard":0.5,"display":"","idle":null,"reachable":true}],"ok":true}',
    ),
    (
        WhoResponse(
            [
                MemberView(
                    "n1",
                    "al",
                    "ws://a:1",
                    "ws://a:1",
                    0,
                    "member",
                    "self",
                    None,
                    "al#n1",
                    2.5,
                    False,
                )
            ]
        ),
        '{"members":[{"node-id":"n1","name":"al","address":"ws://a:1",'
        '"public-address":"ws://a:1","priority":0,"role":"member","link":"self",'
        '"last-heard":null,"display":"al#n1","idle":2.5,"reachable":false}],"ok":true}',
    ),
    (NickResponse("al"), '{"name":"al","ok":true}'),
    (
        TaggedMessage(message=MessageView.of(MESSAGE)),
        '{"kind":"message","message":' + VIEW_JSON + "}",
    ),
    (
        TaggedPresence(
            presence=PresenceView("renamed", "n1", "al", "al", "alice", "2024-01-01T00:00:00Z")
        ),
        '{"kind":"presence","presence":{"event":"renamed","node-id":"n1","name":"al",'
        '"display":"al","old-name":"alice","at":"2024-01-01T00:00:00Z"}}',
    ),
    # Director bodies.
    (RECORD, RECORD_JSON),
    (
        NodeRegistration("n2", "ws://10.0.0.2:9000", "ws://bob.example:9000"),
        '{"node-id":"n2","address":"ws://10.0.0.2:9000","public-address":"ws://bob.example:9000"}',
    ),
    (
        JoinAdvice("join", RECORD, 3),
        '{"action":"join","coordinator":' + RECORD_JSON + ',"term":3,'
        '"observed-address":"","reachable":true,"coordinator-reachable":true}',
    ),
    (
        JoinAdvice(
            "join",
            RECORD,
            3,
            observed_address="203.0.113.7",
            reachable=False,
            coordinator_reachable=False,
        ),
        '{"action":"join","coordinator":' + RECORD_JSON + ',"term":3,'
        '"observed-address":"203.0.113.7","reachable":false,"coordinator-reachable":false}',
    ),
    (Unregistration("n1", 3), '{"node-id":"n1","term":3}'),
]


# Golden JSON --------------------------------------------------------------------------------


def test_every_frame_type_has_a_golden() -> None:
    assert [type(frame) for frame, _ in GOLDEN_FRAMES] == list(FRAME_TYPES.values())


@pytest.mark.parametrize(
    ("frame", "golden"), GOLDEN_FRAMES + GOLDEN_ADDED, ids=lambda v: getattr(v, "TYPE", "")
)
def test_frame_golden_json(frame: Frame, golden: str) -> None:
    assert encode_frame(frame).decode() == golden
    assert decode_frame(golden.encode()) == frame
    assert decode_frame(golden) == frame


@pytest.mark.parametrize(
    ("request_", "golden"), GOLDEN_REQUESTS, ids=lambda v: getattr(v, "OP", "")
)
def test_request_golden_json(request_: Request, golden: str) -> None:
    # Written the way chatctl writes a request: the op first, then the body.
    assert encode({"op": request_.OP, **unstructure(request_)}).decode() == golden
    assert decode_request(decode_json(golden)) == request_


@pytest.mark.parametrize(("body", "golden"), GOLDEN_BODIES, ids=lambda v: type(v).__name__)
def test_response_and_director_golden_json(body: Any, golden: str) -> None:
    assert encode(body).decode() == golden
    assert structure(decode_json(golden), type(body)) == body


def test_request_defaults_apply_when_fields_are_left_out() -> None:
    assert decode_request({"op": "tail"}) == TailRequest(follow=False, last=10)


def test_reachability_is_written_only_when_false_so_older_nodes_still_decode() -> None:
    # Older nodes of this protocol version refuse unknown fields: a reachable node's
    # frames must be exactly what they were before the field existed.
    hello, golden = GOLDEN_FRAMES[0]
    assert isinstance(hello, Hello) and hello.reachable
    assert b"reachable" not in encode_frame(hello)
    decoded = decode_frame(golden)  # an older node's hello: reachable
    assert isinstance(decoded, Hello) and decoded.reachable
    behind_nat = attrs.evolve(MEMBER, reachable=False)
    nodes = Nodes([MEMBER, behind_nat], {}, 3, "n1")
    listed = json.loads(encode_frame(nodes))["node"]
    assert ["reachable" in m for m in listed] == [False, True]
    assert listed[1]["reachable"] is False
    assert decode_frame(encode_frame(nodes)) == nodes
    with pytest.raises(DecodeError, match="expected bool"):
        decode_frame(golden[:-1] + ',"reachable":"no"}')
    assert b"observed-address" not in encode_frame(hello)
    home = attrs.evolve(behind_nat, observed_address="203.0.113.7")  # seen behind its NAT
    listed = json.loads(encode_frame(Nodes([home], {}, 3, "n1")))["node"]
    assert listed[0]["observed-address"] == "203.0.113.7"
    assert decode_frame(encode_frame(Nodes([home], {}, 3, "n1"))) == Nodes([home], {}, 3, "n1")
    with pytest.raises(DecodeError):
        decode_frame(golden[:-1] + ',"observed-address":"' + "x" * 10_000 + '"}')


def test_answers_of_an_older_director_or_chatd_decode_with_the_defaults() -> None:
    advice = structure({"action": "start", "coordinator": None, "term": 1}, JoinAdvice)
    assert (advice.reachable, advice.observed_address) == (True, "")
    old_status = json.loads(STATUS_JSON)
    del old_status["reachable"], old_status["observed-address"], old_status["warning"]
    status = structure(old_status, Status)
    assert (status.reachable, status.observed_address) == (True, "")
    member = json.loads(MEMBER_JSON)
    view = {**member, "role": "member", "link": "up"}
    assert structure(view, MemberView).reachable


# Bad frames ---------------------------------------------------------------------------------

HEARTBEAT = {"type": "heartbeat", "node-id": "n1", "term": 3, "digest": {"n1": 2}}


def with_(**changes: Any) -> bytes:
    body = {**HEARTBEAT, **{k.replace("_", "-"): v for k, v in changes.items()}}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


BAD_FRAMES: list[tuple[str, bytes, str]] = [
    ("malformed", b'{"type": "join"', "not valid JSON"),
    ("empty", b"", "not valid JSON"),
    ("not utf-8", b'{"type": "join", "x": "\xff"}', "not valid JSON"),
    ("array", b'["join"]', "must be a JSON object"),
    ("string", b'"join"', "must be a JSON object"),
    ("no type", b'{"node-id": "n1"}', '"type"'),
    ("type not a string", b'{"type": 1}', '"type"'),
    ("unknown type", b'{"type": "gossip"}', "unknown frame type 'gossip'"),
    ("missing field", with_(digest=...), "required field missing @ $.digest"),
    ("extra field", with_(extra=1), "extra fields found (extra)"),
    ("null for str", with_(node_id=None), "expected str, got NoneType"),
    ("true for int", with_(term=True), "expected int, got bool"),
    ('"1" for int', with_(term="1"), "expected int, got str"),
    ("float for int", with_(term=1.0), "expected int, got float"),
    ("list for clock", with_(digest=[1, 2]), "expected object, got list"),
    ("string for clock", with_(digest="n1"), "expected object, got str"),
    ("str count in clock", with_(digest={"n1": "2"}), "expected int, got str"),
    ("null count in clock", with_(digest={"n1": None}), "expected int, got NoneType"),
    ("string for list", b'{"type": "discussion", "messages": "abc"}', "expected list, got str"),
    ("null in list", b'{"type": "discussion", "messages": [null]}', "expected object"),
    ("int for bool", b'{"type": "vote", "ok": 1, "term": 1}', "expected bool, got int"),
    ("NaN", b'{"type": "vote", "ok": true, "term": NaN}', "not valid JSON"),
    ("Infinity", b'{"type": "vote", "ok": true, "term": Infinity}', "not valid JSON"),
    (
        "deep nesting",
        b'{"type": "join", "x": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        "not valid JSON",
    ),
    ("huge integer", with_(term=10**30), "invalid Heartbeat: expected int"),
    ("enormous integer", with_(term=10**400), "not valid JSON"),
    ("lone surrogate", with_(node_id="\ud800"), "not valid JSON"),
    ("too large", with_(node_id="x" * MAX_FRAME_BYTES), "too large"),
]


@pytest.mark.parametrize(
    ("data", "reason"), [c[1:] for c in BAD_FRAMES], ids=[c[0] for c in BAD_FRAMES]
)
def test_bad_frames_raise_decode_error_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_frame(data)
    assert reason in str(caught.value)


def test_the_lone_surrogate_case_really_is_one() -> None:
    assert b'"\\ud800"' in with_(node_id="\ud800")
    with pytest.raises(DecodeError):
        decode_frame('{"type": "leave", "node-id": "\\udc00", "term": 1}')


def test_size_limit_is_checked_before_parsing() -> None:
    at_limit = with_(node_id="x" * (MAX_FRAME_BYTES - len(with_(node_id=""))))
    assert len(at_limit) == MAX_FRAME_BYTES
    with pytest.raises(DecodeError, match="node-id: length"):  # parsed, then out of range
        decode_frame(at_limit)
    with pytest.raises(DecodeError, match="too large"):
        decode_frame(b" " * (MAX_FRAME_BYTES + 1))


# Bad control requests ------------------------------------------------------------------------

BAD_REQUESTS: list[tuple[Any, str]] = [
    ([], "must be a JSON object"),
    ("send", "must be a JSON object"),
    ({}, '"op"'),
    ({"op": None}, '"op"'),
    ({"op": "explode"}, "unknown op 'explode'"),
    ({"op": "send"}, "required field missing @ $.text"),
    ({"op": "send", "text": None}, "expected str"),
    ({"op": "send", "text": ["hi"]}, "expected str"),
    ({"op": "send", "text": "hi", "to": "bob"}, "extra fields found (to)"),
    ({"op": "tail", "last": "5"}, "expected int"),
    ({"op": "tail", "follow": 1}, "expected bool"),
    ({"op": "history", "all": True}, "extra fields"),
]


@pytest.mark.parametrize(("obj", "reason"), BAD_REQUESTS, ids=[repr(c[0]) for c in BAD_REQUESTS])
def test_bad_requests_raise_decode_error_with_a_reason(obj: Any, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_request(obj)
    assert reason in str(caught.value)


# Fuzzing -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def wire_names(cls: type) -> list[str]:
    return [a.name.replace("_", "-") for a in attrs.fields(cls)]


@st.composite
def frame_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """An object with a real frame type and some of its real field names, any values."""
    kind = draw(st.sampled_from(sorted(FRAME_TYPES)))
    names = wire_names(FRAME_TYPES[kind])
    body = draw(st.dictionaries(st.sampled_from(names or ["x"]), json_values))
    return {"type": kind, **body}


def only_decode_errors(data: bytes | str) -> None:
    # The fuzzer's invariant: a frame that round-trips (and respects the bounds), or a
    # DecodeError with a reason.
    check_frame(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    only_decode_errors(data)


@given(json_values | frame_shaped())
def test_arbitrary_json_decodes_or_raises_decode_error(value: Any) -> None:
    only_decode_errors(json.dumps(value))  # stdlib json: may write NaN, big ints, surrogates


request_shaped = st.builds(
    lambda op, body: {"op": op, **body},
    st.sampled_from(["send", "tail", "history", "status", "who", "leave", "nope"]),
    st.dictionaries(st.sampled_from(["text", "follow", "last", "extra"]), json_values),
)


@given(json_values | request_shaped)
def test_arbitrary_requests_decode_or_raise_decode_error(value: Any) -> None:
    try:
        request = decode_request(value)
    except DecodeError as exc:
        assert str(exc)
    else:
        assert decode_request({"op": request.OP, **unstructure(request)}) == request
    check_request(json.dumps(value))  # and as a line on the control socket


# Round trip of random well-typed frames ----------------------------------------------------


def values_of(tp: Any) -> st.SearchStrategy[Any]:
    """Well-typed values for a field type of the wire classes."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str:
        return st.text(max_size=12)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(0, 2**31 - 1)  # inside every field's range (chat.wire.bounds)
    if origin is list:
        return st.lists(values_of(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(values_of(args[0]), values_of(args[1]), max_size=3)
    if attrs.has(tp):
        return instances_of(tp)
    raise AssertionError(f"no strategy for {tp!r}")


# Fields whose values are narrower than their type: member names (chat.names) and the
# reasons in ``nodes.departed``.
NAMES = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=32,
).filter(lambda n: name_problem(n) is None)
NARROW: dict[str, st.SearchStrategy[Any]] = {
    "name": NAMES,
    "departed": st.dictionaries(
        st.text(max_size=12), st.sampled_from(["left", "timed-out"]), max_size=3
    ),
}


def instances_of(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(
        cls,
        **{
            a.name: NARROW[a.name] if a.name in NARROW else values_of(hints[a.name])
            for a in attrs.fields(cls)
        },
    )


@given(st.sampled_from(list(FRAME_TYPES.values())).flatmap(instances_of))
def test_every_well_typed_frame_round_trips(frame: Frame) -> None:
    data = encode_frame(frame)
    assert decode_frame(data) == frame
    assert orjson.loads(data)["type"] == frame.TYPE


# Every number, string and collection has a range, checked at decode ----------------------

MEMBER_OBJ = orjson.loads(MEMBER_JSON)
HELLO_REST = {
    "protocol-version": 3,
    "term": 1,
    "nonce": "no",
    "public-key": "PK",
    "secure": True,
}
MESSAGE_OBJ = {"type": "message", **orjson.loads(MESSAGE_JSON)}

OUT_OF_RANGE: list[tuple[dict[str, Any], str]] = [
    ({"type": "heartbeat", "node-id": "n1", "term": -1, "digest": {}}, "term: -1 is outside"),
    ({"type": "heartbeat", "node-id": "n1", "term": 2**53, "digest": {}}, "term: 9007199254740992"),
    (
        {"type": "update-coordinator", "coordinator": "n1", "term": 2**64 - 2},
        "is outside",
    ),
    ({"type": "election", "node-id": "n1", "term": 2**63 - 1}, "is outside"),
    ({"type": "heartbeat", "node-id": "n1", "term": 1, "digest": {"n1": -1}}, "count -1"),
    (
        {
            "type": "heartbeat",
            "node-id": "n1",
            "term": 1,
            "digest": {f"n{i}": 1 for i in range(1025)},
        },
        "1025 entries, over 1024",
    ),
    ({"type": "join", "vector-clock": {"x" * 65: 1}}, "node-id is too long"),
    ({"type": "leave", "node-id": "x" * 65, "term": 1}, "node-id: length 65"),
    (
        {
            "type": "nodes",
            "node": [MEMBER_OBJ] * 257,
            "neighbours": {},
            "term": 1,
            "coordinator": "n1",
        },
        "node: length 257 is over 256",
    ),
    ({"type": "vote", "ok": True, "term": 1, "node-id": "n" * 65}, "node-id: length 65"),
    ({**MESSAGE_OBJ, "message": "x" * 4097}, "message: length 4097"),
    ({**MESSAGE_OBJ, "name": "x" * 33}, "name: a name is at most 32 characters"),
    ({**MESSAGE_OBJ, "name": "evil\u202egnp.exe"}, "name: a name cannot contain a format"),
    ({"type": "rename", "name": "a\x1b[2Jb"}, "name: a name cannot contain a control"),
    ({"type": "rename", "name": ""}, "name: a name cannot be empty"),
    (
        {**MEMBER_OBJ, "type": "hello", "name": "x#1"} | HELLO_REST,
        "name: a name cannot contain '#'",
    ),
    (
        {"type": "nodes", "node": [], "neighbours": {}, "term": 1, "coordinator": "n1"}
        | {"departed": {"n2": "exploded"}},
        "departed: reason 'exploded' is not one of",
    ),
    (
        {"type": "nodes", "node": [], "neighbours": {}, "term": 1, "coordinator": "n1"}
        | {"departed": {f"n{i}": "left" for i in range(257)}},
        "departed: 257 entries, over 256",
    ),
    ({**MESSAGE_OBJ, "vector-clock": {"n1": 2**53}}, "count 9007199254740992"),
    ({"type": "discussion-request", "vector-clock": {}, "chains": {"n1": "x" * 129}}, "too long"),
]


@pytest.mark.parametrize(("frame", "why"), OUT_OF_RANGE, ids=lambda v: str(v)[:40])
def test_a_value_out_of_its_range_is_refused_at_decode(frame: dict[str, Any], why: str) -> None:
    with pytest.raises(DecodeError, match=why.replace("(", r"\(")):
        decode_frame(orjson.dumps(frame))


def test_the_node_cannot_build_a_frame_out_of_range_either() -> None:
    with pytest.raises(ValueError, match="term"):
        Heartbeat("n1", 2**53, {})
