"""chatd's client for the director's HTTP API (httpx, which runs on trio through anyio).

Every failure — bad URL, connection refused, timeout, a certificate that does not verify,
an answer that is not the expected JSON, any 4xx/5xx but a refused coordinator
registration — raises one ``DirectorError`` whose message is a single line naming the
director and the cause.

An ``https`` director is checked against the system's CAs and its host name, as a browser
would; or, with a pinned certificate (``chatd --director-cert``), against that certificate
alone.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import trio
from attrs import frozen

from chat.auth import PROOF_HEADER, Keyring, sign_director_request
from chat.wire import (
    DIAL_BACK_HEADER,
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
    """The director could not be used; ``str()`` is one line saying why. When it answered
    with an error, ``status`` is the HTTP status and ``code`` its error code, if any
    (``bad-proof``, ``clock-skew``, ...: ``director.app``)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        # Parts of the message come from the network: keep it to one line.
        super().__init__(" ".join(message.split()))
        self.status = status
        self.code = code


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


def load_director_cert(path: str) -> str:
    """The PEM text of the one certificate in ``path``, to pin; ``DirectorError`` if the
    file cannot be read or does not hold exactly one certificate."""
    # Imported here: only --director-cert needs cryptography (~8 MB of a node's memory).
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    why = f"cannot use {path} as the director's certificate"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DirectorError(f"{why}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise DirectorError(f"{why}: it holds no PEM certificate") from None
    if len(certificates) != 1:
        # A chain would make every certificate in it a trust anchor: pin the director's own.
        raise DirectorError(
            f"{why}: it holds {len(certificates)} certificates; pin the director's own only"
        )
    return certificates[0].public_bytes(serialization.Encoding.PEM).decode("ascii")


def tls_context(pinned_cert: str | None = None) -> ssl.SSLContext:
    """How an ``https`` director is checked: against ``pinned_cert`` (PEM) alone, else
    against the system's CAs with its host name."""
    if pinned_cert is None:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    # The pinned certificate is the only trust anchor, and anchors the chain even when it
    # is not self-signed (a CA-issued certificate may be pinned too).
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    # No host-name check: the pin is stronger than a name. Only the holder of this very
    # certificate's private key can complete the handshake, whatever name or address the
    # director is reached by (often an IP address its certificate does not list).
    context.check_hostname = False
    context.load_verify_locations(cadata=pinned_cert)
    return context


class DirectorClient:
    """Talks to one director. Use as ``async with`` or call ``aclose()``.

    ``keyring``'s first secret signs every POST (``X-Chat-Proof``, a v2 proof dated by
    ``wall_clock`` with a fresh nonce, so the director accepts it once and only soon); the
    attribute may be replaced (a reloaded secret file). ``pinned_cert`` (PEM, for an
    ``https`` URL only) is the one certificate the director may present. ``timeout``
    bounds each request as a whole (connect, send, answer), in seconds. Runs under trio
    (the deadline is a trio cancel scope). Cancellation propagates unchanged.
    """

    def __init__(
        self,
        base_url: str,
        keyring: Keyring | None = None,
        timeout: float = 5.0,
        *,
        pinned_cert: str | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        url = check_base_url(base_url)
        if pinned_cert is not None and url.scheme != "https":
            raise DirectorError(
                f"a director certificate is pinned, but the director URL {base_url!r} is not https"
            )
        self.base_url = str(url).rstrip("/")
        self.keyring = keyring
        self.pinned = pinned_cert is not None
        self._timeout = timeout
        self._wall_clock = wall_clock
        # trust_env=False: proxy variables must not reroute a LAN director, nor .netrc leak.
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            trust_env=False,
            follow_redirects=False,
            verify=tls_context(pinned_cert),
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
        """Ask where to go: join the coordinator named, or start the discussion. The advice
        also says whether the director could dial this node back at its public address
        (``reachable``) and where it saw the request come from (``observed_address``); a
        director that predates them leaves them out: reachable, nothing observed."""
        answer = await self._post("/register_node", reg, {DIAL_BACK_HEADER: "1"})
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

    async def _post(self, path: str, body: Any, extra: dict[str, str] | None = None) -> _Answer:
        content = encode(body)
        headers = {"content-type": "application/json", **(extra or {})}
        if self.keyring is not None:
            # Signed with the endpoint's path, as the director routes it (a proxy may strip
            # a prefix of the URL), the moment before sending.
            headers[PROOF_HEADER] = sign_director_request(
                self.keyring.primary, "POST", path, content, self._wall_clock()
            )
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
            failure = self._tls_failure(exc)
            if failure is not None:
                raise DirectorError(f"{where}: {failure}") from None
            raise DirectorError(f"{where} unreachable: {_cause(exc)}") from None
        except httpx.HTTPError as exc:
            # An https director hangs up on plain HTTP without a word.
            hint = (
                " (does the director serve https?)"
                if isinstance(exc, httpx.RemoteProtocolError) and self.base_url.startswith("http:")
                else ""
            )
            raise DirectorError(f"{where}: {method} {path} failed: {_cause(exc)}{hint}") from None
        except _TooLarge:
            raise DirectorError(
                f"{where} answered {method} {path} with over {_MAX_ANSWER_BYTES} bytes"
                " (is the URL right?)"
            ) from None
        return _Answer(method, path, response.status_code, body)

    def _tls_failure(self, exc: BaseException) -> str | None:
        """What went wrong in the TLS handshake, if that is where ``exc`` comes from."""
        error = _find(exc, ssl.SSLError)
        if isinstance(error, ssl.SSLCertVerificationError):
            why = error.verify_message or error.reason or "unknown reason"
            if self.pinned:
                return (
                    f"certificate verify failed: the director's certificate is not the pinned"
                    f" one ({why})"
                )
            return (
                f"certificate verify failed: {why} (checked against the system's CAs; a"
                " director with its own certificate needs --director-cert)"
            )
        if error is not None:
            return f"TLS handshake failed ({error.reason or error}): does the director serve https?"
        return None

    def _expect_ok(self, answer: _Answer) -> None:
        if answer.status == 200:
            return
        detail = ""
        code = None
        try:
            body = self._json(answer)
            error = body.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                detail = f": {error['message'][:200]}"
            code = _error_code(body)
        except DirectorError:
            detail = " (not a chat director's answer: is the URL right?)"
        raise DirectorError(
            f"director {self.base_url} answered {answer.method} {answer.path} with "
            f"{answer.status} {_phrase(answer.status)}{detail}",
            status=answer.status,
            code=code[:64] if code is not None else None,
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
    for current in _chain(exc):
        # An SSLError's errno is OpenSSL's, not the OS's: it says nothing as os.strerror.
        if isinstance(current, OSError) and current.errno and not isinstance(current, ssl.SSLError):
            return os.strerror(current.errno).lower()
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


E = TypeVar("E", bound=BaseException)


def _find(exc: BaseException, kind: type[E]) -> E | None:
    return next((e for e in _chain(exc) if isinstance(e, kind)), None)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception under it: causes, contexts and group members."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # trio reports a failed connect as a group of per-address errors, under httpcore's.
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
