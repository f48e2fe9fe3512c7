"""chatd's client for the director's HTTP API (httpx, which runs on trio through anyio).

Every failure — bad URL, connection refused, timeout, an answer that is not the expected
JSON, any 4xx/5xx but a refused coordinator registration — raises one ``DirectorError``
whose message is a single line naming the director and the cause.
"""

from __future__ import annotations

import os
from http import HTTPStatus
from types import TracebackType
from typing import Any, TypeVar

import httpx
import trio
from attrs import frozen

from chatd.auth import PROOF_HEADER, Keyring, director_proof
from chatd.wire import (
    CoordinatorRecord,
    DecodeError,
    JoinAdvice,
    NodeRegistration,
    Unregistration,
    decode_json,
    encode,
    structure,
)

T = TypeVar("T")

# Answers are a few hundred bytes; anything larger is not a director.
_MAX_ANSWER_BYTES = 64 * 1024


class DirectorError(Exception):
    """The director could not be used; ``str()`` is one line saying why."""

    def __init__(self, message: str) -> None:
        # Parts of the message come from the network: keep it to one line.
        super().__init__(" ".join(message.split()))


def check_base_url(base_url: str) -> httpx.URL:
    """Parse a director URL (``http[s]://HOST[:PORT][/prefix]``); ``DirectorError`` if bad."""
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise DirectorError(f"invalid director URL {base_url!r}: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise DirectorError(f"invalid director URL {base_url!r}: the scheme must be http or https")
    if not url.host:
        raise DirectorError(f"invalid director URL {base_url!r}: no host")
    if url.port is not None and not 0 < url.port < 65536:
        raise DirectorError(f"invalid director URL {base_url!r}: port {url.port} out of range")
    if url.query or url.fragment:
        raise DirectorError(f"invalid director URL {base_url!r}: no query or fragment allowed")
    return url


class DirectorClient:
    """Talks to one director. Use as ``async with`` or call ``aclose()``.

    ``keyring``'s first secret signs every POST body (``X-Chat-Proof``); the attribute may
    be replaced (a reloaded secret file). ``timeout`` bounds each request
    as a whole (connect, send, answer), in seconds. Runs under trio (the deadline is a
    trio cancel scope). Cancellation propagates unchanged.
    """

    def __init__(self, base_url: str, keyring: Keyring | None = None, timeout: float = 5.0) -> None:
        self.base_url = str(check_base_url(base_url)).rstrip("/")
        self.keyring = keyring
        self._timeout = timeout
        # trust_env=False: proxy variables must not reroute a LAN director, nor .netrc leak.
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, trust_env=False, follow_redirects=False
        )

    async def __aenter__(self) -> DirectorClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def register_node(self, reg: NodeRegistration) -> JoinAdvice:
        """Ask where to go: join the coordinator named, or start the discussion."""
        answer = await self._post("/register_node", reg)
        self._expect_ok(answer)
        return self._decode(answer, JoinAdvice)

    async def register_coordinator(self, record: CoordinatorRecord) -> CoordinatorRecord | None:
        """Announce (or refresh) ``record`` as coordinator. None when accepted; when the
        director refuses it (409: another node holds that term, or a newer term is known),
        the record it holds instead."""
        answer = await self._post("/register_coordinator", record)
        if answer.status == 409:
            body = self._json(answer)
            if _error_code(body) == "refused":
                try:
                    return structure(body.get("coordinator"), CoordinatorRecord)
                except DecodeError as exc:
                    raise DirectorError(
                        f"director {self.base_url} refused the registration with an {exc}"
                    ) from None
        self._expect_ok(answer)
        return None

    async def unregister(self, u: Unregistration) -> bool:
        """Ask the director to forget the coordinator; True if it held that very record."""
        answer = await self._post("/unregister_coordinator", u)
        self._expect_ok(answer)
        forgotten = self._json(answer).get("forgotten")
        return forgotten is True

    async def coordinator(self) -> CoordinatorRecord | None:
        """The coordinator the director knows (``GET /`` as JSON); None when it knows none."""
        answer = await self._request("GET", "/", headers={"accept": "application/json"})
        if answer.status == 503:
            return None
        self._expect_ok(answer)
        return self._decode(answer, CoordinatorRecord)

    async def healthy(self) -> bool:
        """Whether ``GET /healthz`` answers 200 ``{"ok": true}``; never raises."""
        try:
            answer = await self._request("GET", "/healthz")
            return answer.status == 200 and self._json(answer).get("ok") is True
        except DirectorError:
            return False

    async def _post(self, path: str, body: Any) -> _Answer:
        content = encode(body)
        headers = {"content-type": "application/json"}
        if self.keyring is not None:
            headers[PROOF_HEADER] = director_proof(self.keyring.primary, content)
        return await self._request("POST", path, content=content, headers=headers)

    async def _request(self, method: str, path: str, **kwargs: Any) -> _Answer:
        where = f"director {self.base_url}"
        try:
            with trio.fail_after(self._timeout):
                async with self._http.stream(method, path, **kwargs) as response:
                    body = await _read_capped(response)
        except (trio.TooSlowError, httpx.TimeoutException):
            raise DirectorError(f"{where} timed out after {self._timeout:g}s") from None
        except httpx.ConnectError as exc:
            raise DirectorError(f"{where} unreachable: {_cause(exc)}") from None
        except httpx.HTTPError as exc:
            raise DirectorError(f"{where}: {method} {path} failed: {_cause(exc)}") from None
        except _TooLarge:
            raise DirectorError(
                f"{where} answered {method} {path} with over {_MAX_ANSWER_BYTES} bytes"
                " (is the URL right?)"
            ) from None
        return _Answer(method, path, response.status_code, body)

    def _expect_ok(self, answer: _Answer) -> None:
        if answer.status == 200:
            return
        detail = ""
        try:
            error = self._json(answer).get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                detail = f": {error['message'][:200]}"
        except DirectorError:
            detail = " (not a chat director's answer: is the URL right?)"
        raise DirectorError(
            f"director {self.base_url} answered {answer.method} {answer.path} with "
            f"{answer.status} {_phrase(answer.status)}{detail}"
        )

    def _json(self, answer: _Answer) -> dict[str, Any]:
        try:
            value = decode_json(answer.body, limit=_MAX_ANSWER_BYTES)
        except DecodeError as exc:
            raise DirectorError(
                f"director {self.base_url} answered {answer.method} {answer.path} with {exc}"
            ) from None
        if not isinstance(value, dict):
            raise DirectorError(
                f"director {self.base_url} answered {answer.method} {answer.path} "
                "with JSON that is not an object"
            )
        return value

    def _decode(self, answer: _Answer, cls: type[T]) -> T:
        try:
            return structure(self._json(answer), cls)
        except DecodeError as exc:
            raise DirectorError(
                f"director {self.base_url} answered {answer.method} {answer.path} with an {exc}"
            ) from None


@frozen
class _Answer:
    method: str
    path: str
    status: int
    body: bytes


class _TooLarge(Exception):
    pass


async def _read_capped(response: httpx.Response) -> bytes:
    # Read at most the cap: a wrong URL may point at something that streams forever.
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > _MAX_ANSWER_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _phrase(status: int) -> str:
    # From the code, not the wire: hypercorn sends an empty reason phrase.
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "error"


def _error_code(body: dict[str, Any]) -> str | None:
    error = body.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def _cause(exc: BaseException) -> str:
    """The innermost OS error's text ("connection refused"), else the exception's own."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return os.strerror(current.errno).lower()
        # trio reports a failed connect as a group of per-address errors, under httpcore's.
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
