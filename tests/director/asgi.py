"""Drive an ASGI app in-process: hand-built scope, receive and send."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
import orjson

from director.app import DirectorApp


@attrs.frozen
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


async def call(
    app: DirectorApp,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    chunks: Sequence[bytes] | None = None,
    client: str = "127.0.0.1",
) -> Reply:
    """One request from ``client``; ``chunks`` sends the body in pieces (without
    Content-Length)."""
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers]
    if chunks is None:
        raw_headers.append((b"content-length", str(len(body)).encode()))
        chunks = [body]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "query_string": b"",
        "headers": raw_headers,
        "client": (client, 50000),
        "server": ("127.0.0.1", 8700),
    }
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    return Reply(
        status=start["status"],
        headers={k.decode(): v.decode() for k, v in start["headers"]},
        body=b"".join(m["body"] for m in bodies),
    )
