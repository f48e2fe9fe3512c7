"""The director's HTTP face: a raw ASGI 3 application over a ``Registry``.

hypercorn parses HTTP (and TLS); this module only routes by method and path, reads bodies
under a cap, checks the ``X-Chat-Proof`` header of every POST when a secret is set (a v2
proof: MAC of the request with any secret of the keyring, dated within the window of the
wall clock, its nonce never seen; ``director.replay``), and turns registry answers into
JSON. Errors are ``{"ok": false, "error": {"code", "message"}}``. Each request is
logged as one event with its outcome; bodies are never logged. The director never sees
chat text. A ``/register_node`` that asks (``DIAL_BACK_HEADER``) is told the address it
came from and whether its advertised address could be dialed (``director.dialback``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs
import orjson
import trio

from chat.auth import PROOF_HEADER, Keyring, parse_director_proof
from chat.log import get_logger
from chat.wire import (
    DIAL_BACK_HEADER,
    CoordinatorRecord,
    DecodeError,
    NodeRegistration,
    Unregistration,
    decode_json,
    structure,
    unstructure,
)
from chat.wire.bounds import MAX_MEMBERS
from director.dialback import DialBack
from director.registry import Accepted, Registry
from director.replay import ReplayGuard

MAX_BODY_BYTES = 64 * 1024

T = TypeVar("T")

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Any], Awaitable[None]]
# A route: (scope, body, bound logger) -> response; raises HTTPError to refuse.
Handler = Callable[[Scope, bytes, Any], Awaitable["Response"]]


class HTTPError(Exception):
    """Ends a request with ``status`` and an error body; logged as a refusal."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: tuple[tuple[bytes, bytes], ...] = (),
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers, self.extra = headers, extra


@attrs.frozen
class Response:
    status: int
    body: Any
    headers: tuple[tuple[bytes, bytes], ...] = ()


@attrs.define
class DirectorApp:
    """ASGI application; ``clock`` gives ``now`` to the registry (trio's clock by default),
    ``wall_clock`` the unix time that signed requests' timestamps are checked against."""

    registry: Registry
    # The group secrets (any one signs a request); None accepts unsigned ones. Replaced
    # when the secret file is reloaded (SIGHUP); the nonces seen are kept.
    keyring: Keyring | None
    clock: Callable[[], float] = trio.current_time
    wall_clock: Callable[[], float] = time.time
    replay: ReplayGuard = attrs.field(factory=ReplayGuard)
    dial_back: DialBack = attrs.field(factory=DialBack)
    _log: Any = attrs.field(factory=lambda: get_logger(component="director"), init=False)
    # Whether the nonce memory's being full has been logged (once per episode).
    _full_logged: bool = attrs.field(default=False, init=False)
    # The nodes whose last dial-back found them dial-out-only, newest last (bounded).
    _dial_out_only: dict[str, None] = attrs.field(factory=dict, init=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        # Paths come from anyone: log a bounded prefix only.
        log = self._log.bind(method=method, path=path[:100], client=_client(scope))
        try:
            handler = self._route(method, path)
            body = await _read_body(scope, receive) if method == "POST" else b""
            if method == "POST":
                self._check_proof(scope, method, path, body, log)
            expired = self.registry.expire(self.clock())
            if expired is not None:
                log.info("director.coordinator.expired", **_fields(expired))
            response = await handler(scope, body, log)
        except HTTPError as exc:
            # Bad input, and a full nonce memory, deserve an operator's eye; 404/405/409 and
            # "no coordinator" are routine answers.
            level = "warning" if exc.status in (400, 403, 413) or exc.code == "busy" else "info"
            getattr(log, level)(
                "director.request.refused",
                status=exc.status,
                reason=exc.code,
                detail=exc.message[:200],
            )
            error = {"code": exc.code, "message": exc.message}
            answer = {"ok": False, "error": error, **exc.extra}
            response = Response(exc.status, answer, exc.headers)
        except _Disconnected:
            log.info("director.request.abandoned")
            return
        except Exception:
            # A bug: answer 500 and keep serving (the body is never bound to the logger).
            log.exception("director.request.failed")
            error = {"code": "internal", "message": "internal error (logged)"}
            response = Response(500, {"ok": False, "error": error})
        await _respond(send, response)

    def _route(self, method: str, path: str) -> Handler:
        routes: dict[str, dict[str, Handler]] = {
            "/": {"GET": self._get_coordinator},
            "/healthz": {"GET": self._healthz},
            "/register_coordinator": {"POST": self._register_coordinator},
            "/register_node": {"POST": self._register_node},
            "/unregister_coordinator": {"POST": self._unregister},
        }
        methods = routes.get(path)
        if methods is None:
            raise HTTPError(404, "not-found", f"no such endpoint: {path[:100]}")
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(methods)
            raise HTTPError(
                405,
                "method-not-allowed",
                f"{path} accepts {allowed}",
                headers=((b"allow", allowed.encode()),),
            )
        return handler

    def _check_proof(self, scope: Scope, method: str, path: str, body: bytes, log: Any) -> None:
        if self.keyring is None:
            return
        given = _header(scope, PROOF_HEADER.lower().encode())
        if given is None:
            raise HTTPError(
                403,
                "missing-proof",
                f"missing {PROOF_HEADER} header: this director needs requests signed with the"
                " group secret",
            )
        proof = parse_director_proof(given.decode("latin-1"))
        if proof is None:
            raise HTTPError(
                403,
                "bad-proof",
                f"bad {PROOF_HEADER} header: not 'v2 t=<unix seconds> n=<32 hex> mac=<64 hex>'"
                " (a chatd older than this director?)",
            )
        if not self.keyring.accepts(
            lambda secret: proof.expected(secret, method, path, body), proof.mac
        ):
            raise HTTPError(
                403,
                "bad-proof",
                f"bad {PROOF_HEADER}: not this request signed with the group secret",
            )
        now = self.wall_clock()
        verdict = self.replay.check(proof.timestamp, proof.nonce, now)
        if verdict == "fresh":
            self._full_logged = False
        elif verdict == "stale":
            offset = proof.timestamp - now
            raise HTTPError(
                403,
                "clock-skew",
                f"timestamp outside the window (clock skew?): the request is dated"
                f" {abs(offset):.0f}s {'ahead of' if offset > 0 else 'behind'} the director's"
                f" clock, beyond the {self.replay.window:g}s allowed; check both hosts' clocks",
            )
        elif verdict == "replayed":
            raise HTTPError(403, "replayed", "replayed request: its proof has been used before")
        else:
            if not self._full_logged:
                self._full_logged = True
                log.error(
                    "director.replay.full",
                    capacity=self.replay.capacity,
                    window=self.replay.window,
                    detail="refusing signed requests until nonces leave the window",
                )
            wait = self.replay.retry_after(now)
            raise HTTPError(
                503,
                "busy",
                f"too many signed requests: {self.replay.capacity} within"
                f" {self.replay.window:g}s; retry in {wait}s",
                headers=((b"retry-after", str(wait).encode()),),
            )

    async def _healthz(self, scope: Scope, body: bytes, log: Any) -> Response:
        log.debug("director.health.checked")
        return Response(200, {"ok": True})

    async def _get_coordinator(self, scope: Scope, body: bytes, log: Any) -> Response:
        record = self.registry.coordinator()
        if record is None:
            raise HTTPError(503, "no-coordinator", "no discussion is running: no coordinator known")
        wants_json = _accepts_json(_header(scope, b"accept") or b"")
        log.info("director.coordinator.served", redirect=not wants_json, **_fields(record))
        if wants_json:
            return Response(200, record)
        location = record.public_address.encode("latin-1", "replace")
        return Response(307, record, headers=((b"location", location),))

    async def _register_coordinator(self, scope: Scope, body: bytes, log: Any) -> Response:
        record = _decode(body, CoordinatorRecord)
        was_provisional = self.registry.provisional
        outcome = self.registry.register_coordinator(record, self.clock())
        if not isinstance(outcome, Accepted):
            raise HTTPError(
                409,
                "refused",
                f"{outcome.reason}: node {outcome.current.node_id} "
                f"coordinates term {outcome.current.term}",
                coordinator=unstructure(outcome.current),
            )
        previous = outcome.previous
        if previous is not None and previous.node_id == record.node_id and not was_provisional:
            # A heartbeat: routine, so below the operator's default level.
            log.debug("director.coordinator.refreshed", **_fields(record))
        else:
            replaced = None if previous is None else previous.node_id
            log.info("director.coordinator.registered", replaced=replaced, **_fields(record))
        return Response(200, {"ok": True, "coordinator": record})

    async def _register_node(self, scope: Scope, body: bytes, log: Any) -> Response:
        reg = _decode(body, NodeRegistration)
        advice = self.registry.register_node(reg, self.clock())
        target = advice.coordinator.node_id if advice.coordinator else None
        log.info(
            "director.node.advised",
            **{"node-id": reg.node_id},
            action=advice.action,
            term=advice.term,
            coordinator=target,
        )
        if _header(scope, DIAL_BACK_HEADER.lower().encode()) != b"1":
            # A node that predates the fields would refuse them: today's answer.
            answer = unstructure(advice)
            del answer["observed-address"], answer["reachable"], answer["coordinator-reachable"]
            return Response(200, answer)
        observed = _client(scope, port=False) or ""
        verdict = await self.dial_back.check(reg.public_address, observed)
        log.info(
            "director.dialback",
            **{"node-id": reg.node_id, "public-address": reg.public_address},
            observed=observed,
            result=verdict.result,
            reachable=verdict.reachable,
            reason=verdict.reason,
        )
        self._note_reachability(reg.node_id, verdict.reachable)
        named = advice.coordinator.node_id if advice.coordinator else None
        answer = attrs.evolve(
            advice,
            observed_address=observed,
            reachable=verdict.reachable,
            coordinator_reachable=named not in self._dial_out_only,
        )
        return Response(200, answer)

    def _note_reachability(self, node_id: str, reachable: bool) -> None:
        """Remember the dial-out-only nodes (the newest MAX_MEMBERS): a coordinator among
        them cannot be dialed by newcomers, which they are told."""
        self._dial_out_only.pop(node_id, None)
        if not reachable:
            self._dial_out_only[node_id] = None
            while len(self._dial_out_only) > MAX_MEMBERS:
                del self._dial_out_only[next(iter(self._dial_out_only))]

    async def _unregister(self, scope: Scope, body: bytes, log: Any) -> Response:
        u = _decode(body, Unregistration)
        forgotten = self.registry.unregister(u)
        log.info(
            "director.coordinator.unregistered",
            **{"node-id": u.node_id},
            term=u.term,
            forgotten=forgotten,
        )
        return Response(200, {"ok": True, "forgotten": forgotten})


class _Disconnected(Exception):
    """The client went away before sending its whole body."""


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to set up or tear down; answering keeps hypercorn from warning.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The request body; 413 as soon as it exceeds the cap, whatever Content-Length says."""
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPError(413, "too-large", f"body of {int(declared)} bytes (limit {MAX_BODY_BYTES})")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPError(413, "too-large", f"body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _decode(body: bytes, cls: type[T]) -> T:
    try:
        return structure(decode_json(body, limit=MAX_BODY_BYTES), cls)
    except DecodeError as exc:
        raise HTTPError(400, "bad-request", str(exc)) from None


async def _respond(send: Send, response: Response) -> None:
    payload = orjson.dumps(unstructure(response.body))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        *response.headers,
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def _accepts_json(accept: bytes) -> bool:
    types = (part.split(b";")[0].strip().lower() for part in accept.split(b","))
    return b"application/json" in types


def _client(scope: Scope, *, port: bool = True) -> str | None:
    """Where the request came from: ``HOST:PORT``, or the host alone."""
    client = scope.get("client")
    if not client:
        return None
    return f"{client[0]}:{client[1]}" if port else str(client[0])


def _fields(record: CoordinatorRecord) -> dict[str, Any]:
    return {"node-id": record.node_id, "term": record.term, "public-address": record.public_address}
