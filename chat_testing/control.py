"""Asking a running program: a node's control socket (raw JSON Lines, or through the real
``chatctl``) and the director's HTTP API. Every call has a timeout.
"""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from chat_testing.process import binary, child_env
from chat_testing.waiting import DEFAULT_TIMEOUT

Message = dict[str, Any]


class ControlClient:
    """A raw JSON Lines connection kept open on a node's control socket.

    For traffic at a steady rate: one connection carries every request, where ``chatctl``
    would start a process per message. Not thread-safe; use one per thread.
    """

    def __init__(self, sock: Path, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(str(sock))
        except BaseException:
            self._sock.close()
            raise
        self._reader = self._sock.makefile("rb")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """One request; the answer object (``ok`` true or false)."""
        self._sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
        line = self._reader.readline()
        if not line:
            raise ConnectionError("chatd closed the control connection")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise AssertionError(f"not a JSON object: {line!r}")
        return answer

    def close(self) -> None:
        self._reader.close()
        self._sock.close()


# chatctl -----------------------------------------------------------------------------------


def chatctl(
    sock: Path, *args: str, timeout: float = DEFAULT_TIMEOUT, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``chatctl --socket SOCK ARGS``; never raises for a non-zero exit."""
    return subprocess.run(
        [binary("chatctl"), "--socket", str(sock), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
        check=False,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(result.args[1:])} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


def json_lines(text: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        value = json.loads(line)
        assert isinstance(value, dict), f"not a JSON object: {line!r}"
        out.append(value)
    return out


def status(sock: Path) -> dict[str, Any]:
    """``chatctl status --json``: one object."""
    (value,) = json_lines(_ok(chatctl(sock, "status", "--json")))
    return value


def history(sock: Path) -> list[Message]:
    """``chatctl history --json``: the messages in canonical order."""
    return json_lines(_ok(chatctl(sock, "history", "--json")))


def who(sock: Path) -> list[dict[str, Any]]:
    """``chatctl who --json``: the member records."""
    return json_lines(_ok(chatctl(sock, "who", "--json")))


def send(sock: Path, text: str) -> Message:
    """``chatctl send --json TEXT``: the message as the node accepted it."""
    (value,) = json_lines(_ok(chatctl(sock, "send", "--json", text)))
    return value


# The director ------------------------------------------------------------------------------


def http_get(url: str, accept_json: bool = True, timeout: float = 5.0) -> tuple[int, Any]:
    """GET ``url`` without following redirects; the status and the decoded JSON body."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    headers = {"Accept": "application/json"} if accept_json else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")
