"""The ASGI app, called directly: routing, caps, proofs, answers and what gets logged."""

from __future__ import annotations

from typing import Any

import orjson
import trio
from structlog.testing import capture_logs

from chatd.auth import PROOF_HEADER, Keyring, director_proof
from director.app import MAX_BODY_BYTES, DirectorApp
from director.registry import Registry
from tests.director.asgi import Reply, call

SECRET = b"0123456789abcdef-director-tests"
NODE_A = {"node-id": "a", "address": "ws://10.0.0.1:9000", "public-address": "ws://a.example"}
NODE_B = {"node-id": "b", "address": "ws://10.0.0.2:9000", "public-address": "ws://b.example"}


def coordinator(node: dict[str, str], term: int) -> dict[str, Any]:
    return {**node, "term": term}


async def post(app: DirectorApp, path: str, obj: Any, secret: bytes | None = None) -> Reply:
    body = orjson.dumps(obj)
    headers = [("content-type", "application/json")]
    if secret is not None:
        headers.append((PROOF_HEADER, director_proof(secret, body)))
    return await call(app, "POST", path, body, headers)


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
        app = DirectorApp(Registry(), Keyring.of(SECRET))
        unsigned = await post(app, "/register_node", NODE_A)
        assert (unsigned.status, error_code(unsigned)) == (403, "forbidden")
        forged = await post(app, "/register_node", NODE_A, secret=b"another secret of 16+ bytes")
        assert forged.status == 403
        # A proof of another body does not carry over.
        body = orjson.dumps(NODE_A)
        stolen = director_proof(SECRET, orjson.dumps(NODE_B))
        replayed = await call(app, "POST", "/register_node", body, [(PROOF_HEADER, stolen)])
        assert replayed.status == 403
        assert app.registry.coordinator() is None
        signed = await post(app, "/register_node", NODE_A, secret=SECRET)
        assert signed.status == 200
        # Reading needs no proof: newcomers without the secret can find the coordinator.
        assert (await call(app, "GET", "/healthz")).status == 200


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
