"""The ASGI app, called directly: routing, caps, proofs, answers and what gets logged."""

from __future__ import annotations

from typing import Any

import orjson
import trio
from structlog.testing import capture_logs

from chat.auth import PROOF_HEADER, Keyring, sign_director_request
from director.app import MAX_BODY_BYTES, DirectorApp
from director.registry import Registry
from director.replay import ReplayGuard
from tests.director.asgi import Reply, call

SECRET = b"0123456789abcdef-director-tests"
SECOND = b"fedcba9876543210-the-next-secret"
# The wall clock of the signed-request tests: any fixed unix time.
NOW = 1_700_000_000.0
NODE_A = {"node-id": "a", "address": "ws://10.0.0.1:9000", "public-address": "ws://a.example"}
NODE_B = {"node-id": "b", "address": "ws://10.0.0.2:9000", "public-address": "ws://b.example"}


def coordinator(node: dict[str, str], term: int) -> dict[str, Any]:
    return {**node, "term": term}


async def post(
    app: DirectorApp,
    path: str,
    obj: Any,
    secret: bytes | None = None,
    *,
    proof: str | None = None,
) -> Reply:
    """POST ``obj``, signed with ``secret`` at the app's wall clock, or with ``proof``."""
    body = orjson.dumps(obj)
    headers = [("content-type", "application/json")]
    if secret is not None:
        proof = sign_director_request(secret, "POST", path, body, app.wall_clock())
    if proof is not None:
        headers.append((PROOF_HEADER, proof))
    return await call(app, "POST", path, body, headers)


def signed_app(
    *secrets: bytes, guard: ReplayGuard | None = None
) -> tuple[DirectorApp, list[float]]:
    """An app that needs proofs, and its wall clock (a list to move ``[0]``)."""
    wall = [NOW]
    app = DirectorApp(
        Registry(),
        Keyring.of(*secrets),
        wall_clock=lambda: wall[0],
        replay=guard if guard is not None else ReplayGuard(),
    )
    return app, wall


def error_code(reply: Reply) -> str:
    body = reply.json()
    assert body["ok"] is False
    code: str = body["error"]["code"]
    return code


async def test_healthz() -> None:
    with trio.fail_after(5):
        reply = await call(DirectorApp(Registry(), None), "GET", "/healthz")
        assert (reply.status, reply.json()) == (200, {"ok": True})
        assert reply.headers["content-type"] == "application/json"


async def test_no_coordinator_is_503() -> None:
    with trio.fail_after(5):
        app = DirectorApp(Registry(), None)
        reply = await call(app, "GET", "/", headers=[("accept", "application/json")])
        assert reply.status == 503
        assert error_code(reply) == "no-coordinator"


async def test_newcomers_start_then_join_and_get_redirected() -> None:
    with trio.fail_after(5):
        app = DirectorApp(Registry(), None)
        first = await post(app, "/register_node", NODE_A)
        assert (first.status, first.json()) == (
            200,
            {"action": "start", "coordinator": None, "term": 1},
        )
        second = await post(app, "/register_node", NODE_B)
        assert second.json() == {"action": "join", "coordinator": coordinator(NODE_A, 1), "term": 0}

        redirect = await call(app, "GET", "/")
        assert redirect.status == 307
        assert redirect.headers["location"] == "ws://a.example"
        as_json = await call(app, "GET", "/", headers=[("accept", "text/html, application/json")])
        assert (as_json.status, as_json.json()) == (200, coordinator(NODE_A, 1))


async def test_refused_registration_is_409_with_current_record() -> None:
    with trio.fail_after(5):
        app = DirectorApp(Registry(), None)
        assert (await post(app, "/register_coordinator", coordinator(NODE_A, 2))).status == 200
        refused = await post(app, "/register_coordinator", coordinator(NODE_B, 2))
        assert refused.status == 409
        assert error_code(refused) == "refused"
        assert refused.json()["coordinator"] == coordinator(NODE_A, 2)
        newer = await post(app, "/register_coordinator", coordinator(NODE_B, 3))
        assert newer.json() == {"ok": True, "coordinator": coordinator(NODE_B, 3)}


async def test_unregister() -> None:
    with trio.fail_after(5):
        app = DirectorApp(Registry(), None)
        await post(app, "/register_coordinator", coordinator(NODE_A, 4))
        wrong = await post(app, "/unregister_coordinator", {"node-id": "a", "term": 3})
        assert wrong.json() == {"ok": True, "forgotten": False}
        right = await post(app, "/unregister_coordinator", {"node-id": "a", "term": 4})
        assert right.json() == {"ok": True, "forgotten": True}
        assert (await call(app, "GET", "/")).status == 503


async def test_bad_bodies_are_400() -> None:
    with trio.fail_after(5):
        app = DirectorApp(Registry(), None)
        bad = [
            b"",
            b"not json",
            b"[1, 2]",
            b'{"node-id": "a"}',
            b'{"node-id": null, "address": "x", "public-address": "y"}',
            b'{"node-id": "a", "address": "x", "public-address": "y", "extra": 1}',
            b'{"node-id": "a", "address": "x", "public-address": "y", "term": "1"}',
        ]
        for body in bad:
            reply = await call(app, "POST", "/register_coordinator", body)
            assert reply.status == 400, body
            assert error_code(reply) == "bad-request"
            assert reply.json()["error"]["message"]
        assert app.registry.coordinator() is None


async def test_oversized_bodies_are_413() -> None:
    with trio.fail_after(5):
        app = DirectorApp(Registry(), None)
        declared = await call(app, "POST", "/register_node", b"x" * (MAX_BODY_BYTES + 1))
        assert (declared.status, error_code(declared)) == (413, "too-large")
        # Without Content-Length the cap applies while reading.
        streamed = await call(app, "POST", "/register_node", chunks=[b"x" * 40_000] * 2)
        assert (streamed.status, error_code(streamed)) == (413, "too-large")


async def test_unknown_path_404_and_wrong_method_405() -> None:
    with trio.fail_after(5):
        app = DirectorApp(Registry(), None)
        missing = await call(app, "GET", "/nope")
        assert (missing.status, error_code(missing)) == (404, "not-found")
        wrong = await call(app, "GET", "/register_node")
        assert (wrong.status, error_code(wrong)) == (405, "method-not-allowed")
        assert wrong.headers["allow"] == "POST"
        assert (await call(app, "DELETE", "/")).headers["allow"] == "GET"


async def test_secret_requires_a_proof_on_every_post() -> None:
    with trio.fail_after(5):
        app, _ = signed_app(SECRET)
        unsigned = await post(app, "/register_node", NODE_A)
        assert (unsigned.status, error_code(unsigned)) == (403, "missing-proof")
        forged = await post(app, "/register_node", NODE_A, secret=b"another secret of 16+ bytes")
        assert (forged.status, error_code(forged)) == (403, "bad-proof")
        # A proof of another body does not carry over.
        stolen = sign_director_request(SECRET, "POST", "/register_node", orjson.dumps(NODE_B), NOW)
        other_body = await post(app, "/register_node", NODE_A, proof=stolen)
        assert (other_body.status, error_code(other_body)) == (403, "bad-proof")
        assert app.registry.coordinator() is None
        signed = await post(app, "/register_node", NODE_A, secret=SECRET)
        assert signed.status == 200
        # Reading needs no proof: newcomers without the secret can find the coordinator.
        assert (await call(app, "GET", "/healthz")).status == 200


async def test_a_v1_or_malformed_proof_is_refused_clearly() -> None:
    with trio.fail_after(5):
        app, _ = signed_app(SECRET)
        good = sign_director_request(SECRET, "POST", "/register_node", orjson.dumps(NODE_A), NOW)
        for bad in [
            "0" * 64,  # a v1 proof: an HMAC of the body alone
            good.replace("v2 ", "v3 "),
            good.upper(),
            good + " ",
            good.replace(" n=", " n=0"),
            "v2 t=1700000000 n=" + "a" * 32,
        ]:
            reply = await post(app, "/register_node", NODE_A, proof=bad)
            assert (reply.status, error_code(reply)) == (403, "bad-proof"), bad
            assert "v2 t=<unix seconds> n=<32 hex> mac=<64 hex>" in reply.json()["error"]["message"]
        assert (await post(app, "/register_node", NODE_A, proof=good)).status == 200


async def test_a_replayed_request_is_refused() -> None:
    with trio.fail_after(5):
        app, wall = signed_app(SECRET)
        body = orjson.dumps(coordinator(NODE_A, 1))
        header = sign_director_request(SECRET, "POST", "/register_coordinator", body, NOW)
        first = await call(app, "POST", "/register_coordinator", body, [(PROOF_HEADER, header)])
        assert first.status == 200
        wall[0] = NOW + 29
        with capture_logs() as logs:
            again = await call(app, "POST", "/register_coordinator", body, [(PROOF_HEADER, header)])
        assert (again.status, error_code(again)) == (403, "replayed")
        assert again.json()["error"]["message"] == (
            "replayed request: its proof has been used before"
        )
        assert [(e["event"], e["reason"], e["log_level"]) for e in logs] == [
            ("director.request.refused", "replayed", "warning")
        ]
        # The same body signed afresh is a new request.
        fresh = await post(app, "/register_coordinator", coordinator(NODE_A, 1), SECRET)
        assert fresh.status == 200


async def test_a_timestamp_outside_the_window_is_refused() -> None:
    with trio.fail_after(5):
        app, _ = signed_app(SECRET)
        body = orjson.dumps(NODE_A)
        for offset, word in [(-31, "behind"), (31, "ahead of"), (-3600, "behind")]:
            proof = sign_director_request(SECRET, "POST", "/register_node", body, NOW + offset)
            reply = await post(app, "/register_node", NODE_A, proof=proof)
            assert (reply.status, error_code(reply)) == (403, "clock-skew")
            message = reply.json()["error"]["message"]
            assert message.startswith("timestamp outside the window (clock skew?)")
            assert f"dated {abs(offset)}s {word} the director's clock" in message
        for offset in (-30, 30):  # the window's edges are inside
            proof = sign_director_request(SECRET, "POST", "/register_node", body, NOW + offset)
            assert (await post(app, "/register_node", NODE_A, proof=proof)).status == 200


async def test_a_proof_for_another_path_or_method_is_refused() -> None:
    with trio.fail_after(5):
        app, _ = signed_app(SECRET)
        body = orjson.dumps({"node-id": "a", "term": 1})
        for method, path in [("POST", "/register_node"), ("GET", "/unregister_coordinator")]:
            proof = sign_director_request(SECRET, method, path, body, NOW)
            reply = await call(
                app, "POST", "/unregister_coordinator", body, [(PROOF_HEADER, proof)]
            )
            assert (reply.status, error_code(reply)) == (403, "bad-proof"), (method, path)
        # The nonce of a refused proof is not spent: the right proof with it passes.
        nonce = "0f" * 16
        proof = sign_director_request(SECRET, "POST", "/register_node", body, NOW, nonce)
        assert (
            await call(app, "POST", "/unregister_coordinator", body, [(PROOF_HEADER, proof)])
        ).status == 403
        right = sign_director_request(SECRET, "POST", "/unregister_coordinator", body, NOW, nonce)
        assert (
            await call(app, "POST", "/unregister_coordinator", body, [(PROOF_HEADER, right)])
        ).status == 200


async def test_any_secret_of_the_keyring_signs() -> None:
    with trio.fail_after(5):
        app, _ = signed_app(SECRET, SECOND)
        assert (await post(app, "/register_node", NODE_A, SECOND)).status == 200
        assert (await post(app, "/register_node", NODE_B, SECRET)).status == 200
        third = await post(app, "/register_node", NODE_B, b"a third secret, not in the ring")
        assert third.status == 403
        # Replaced keyring (a reload): the dropped secret no longer signs.
        app.keyring = Keyring.of(SECOND)
        assert (await post(app, "/register_node", NODE_B, SECRET)).status == 403
        assert (await post(app, "/register_node", NODE_B, SECOND)).status == 200


async def test_the_nonce_memory_is_bounded() -> None:
    with trio.fail_after(5):
        app, wall = signed_app(SECRET, guard=ReplayGuard(window=30, capacity=3))
        for _ in range(3):
            assert (await post(app, "/register_node", NODE_A, SECRET)).status == 200
        wall[0] = NOW + 10
        with capture_logs() as logs:
            for _ in range(5):
                busy = await post(app, "/register_node", NODE_A, SECRET)
                assert (busy.status, error_code(busy)) == (503, "busy")
        # Retry once the oldest nonce leaves the window: signed at NOW, forgotten after NOW+30.
        assert busy.headers["retry-after"] == "20"
        assert len(app.replay) == 3
        events = [e["event"] for e in logs]
        # Said once at error level, then every refusal as usual.
        assert events.count("director.replay.full") == 1
        assert events.count("director.request.refused") == 5
        assert next(e for e in logs if e["event"] == "director.replay.full")["log_level"] == "error"
        # A replay is still a replay, not "busy": nothing was forgotten.
        wall[0] = NOW + 30.5
        assert (await post(app, "/register_node", NODE_A, SECRET)).status == 200
        assert len(app.replay) == 1


async def test_window_expiry_frees_nonces() -> None:
    with trio.fail_after(5):
        app, wall = signed_app(SECRET)
        body = orjson.dumps(NODE_A)
        proof = sign_director_request(SECRET, "POST", "/register_node", body, NOW)
        assert (await post(app, "/register_node", NODE_A, proof=proof)).status == 200
        for step in range(1, 6):
            wall[0] = NOW + step
            assert (await post(app, "/register_node", NODE_A, SECRET)).status == 200
        assert len(app.replay) == 6
        wall[0] = NOW + 33  # the first three are out of the window: ...
        late = await post(app, "/register_node", NODE_A, proof=proof)
        # ... their nonces are forgotten, and the timestamp alone refuses them.
        assert (late.status, error_code(late)) == (403, "clock-skew")
        assert len(app.replay) == 3


async def test_expired_coordinator_is_forgotten() -> None:
    with trio.fail_after(5):
        now = [0.0]
        app = DirectorApp(Registry(ttl=10), None, clock=lambda: now[0])
        await post(app, "/register_coordinator", coordinator(NODE_A, 1))
        now[0] = 11
        with capture_logs() as logs:
            assert (await call(app, "GET", "/")).status == 503
        assert "director.coordinator.expired" in [e["event"] for e in logs]
        advice = (await post(app, "/register_node", NODE_B)).json()
        assert advice == {"action": "start", "coordinator": None, "term": 2}


async def test_events_are_logged_without_bodies() -> None:
    with trio.fail_after(5):
        app = DirectorApp(Registry(), None)
        marker = "value-that-must-not-be-logged"
        with capture_logs() as logs:
            await post(app, "/register_node", NODE_A)
            await post(app, "/register_coordinator", coordinator(NODE_B, 1))
            await post(app, "/register_coordinator", {**NODE_A, "term": marker})
            await call(app, "POST", "/register_node", b'{"node-id": "' + marker.encode())
        events = [(e["event"], e.get("reason")) for e in logs]
        assert events == [
            ("director.node.advised", None),
            ("director.request.refused", "refused"),
            ("director.request.refused", "bad-request"),
            ("director.request.refused", "bad-request"),
        ]
        assert marker not in repr(logs)


async def test_a_bug_answers_500_and_keeps_serving() -> None:
    class Broken(Registry):
        def register_node(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("bug")

    with trio.fail_after(5):
        app = DirectorApp(Broken(), None)
        with capture_logs() as logs:
            reply = await post(app, "/register_node", NODE_A)
        assert (reply.status, error_code(reply)) == (500, "internal")
        assert logs[-1]["event"] == "director.request.failed"
        assert (await call(app, "GET", "/healthz")).status == 200


async def test_lifespan_is_acknowledged() -> None:
    with trio.fail_after(5):
        app = DirectorApp(Registry(), None)
        incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[Any] = []

        async def receive() -> Any:
            return incoming.pop(0)

        async def send(message: Any) -> None:
            sent.append(message["type"])

        await app({"type": "lifespan"}, receive, send)
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
