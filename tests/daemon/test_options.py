"""chatd's start-up checks of its options: refused with one line and exit 2 before anything
is bound (``chatd.__main__``, ``chatd.addresses``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatd.__main__ import main as chatd_main
from chatd.addresses import advertise_problem, is_wildcard

GOOD = [
    "wss://192.0.2.10:8701",
    "wss://192.0.2.10:8701/",
    "wss://chat-1.example.org:8701",
    "wss://node.example.:8701",
    "wss://localhost:1",
    "wss://127.0.0.1:65535",
    "wss://[2001:db8::1]:8701",
    "wss://[::1]:8701",
]

BAD = [
    ("wss://0.0.0.0:8701", "0.0.0.0 is a wildcard"),
    ("wss://[::]:8701", ":: is a wildcard"),
    ("wss://224.0.0.1:8701", "not the address of one host"),
    ("wss://255.255.255.255:8701", "not the address of one host"),
    ("wss://foo", "no port"),
    ("wss://:8701", "no host"),
    ("wss://", "no host"),
    ("wss://host:0", "port 0 out of range"),
    ("wss://host:70000", "not a wss://HOST:PORT address"),
    ("wss://host:port", "not a wss://HOST:PORT address"),
    ("wss://host:8701/chat", "no path, query or fragment"),
    ("wss://host:8701?x=1", "no path, query or fragment"),
    ("wss://host:8701#top", "no path, query or fragment"),
    ("wss://me@host:8701", "no user name or password"),
    ("wss://under_score:8701", "not a valid host name"),
    ("wss://sp ace:8701", "not a valid host name"),
    ("wss://-dash.example:8701", "not a valid host name"),
    ("wss://a..b:8701", "not a valid host name"),
    ("wss://300.1.2.3:8701", "300.1.2.3 is not a valid IP address"),
    ("wss://[::g]:8701", "not a wss://HOST:PORT address"),
    ("ws://192.0.2.10:8701", "it must start with wss://"),
    ("wss://" + "a." * 130 + "b:1", "longer than 256 characters"),
]


@pytest.mark.parametrize("address", GOOD)
def test_dialable_addresses_are_accepted(address: str) -> None:
    assert advertise_problem(address, "wss") is None


@pytest.mark.parametrize(("address", "says"), BAD)
def test_undialable_addresses_say_why(address: str, says: str) -> None:
    problem = advertise_problem(address, "wss")
    assert problem is not None and says in problem, problem


def test_wildcards() -> None:
    assert is_wildcard("0.0.0.0") and is_wildcard("::") and is_wildcard("[::]")
    assert not is_wildcard("127.0.0.1") and not is_wildcard("192.0.2.1")
    assert not is_wildcard("localhost")


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    secret = tmp_path / "secret"
    secret.write_bytes(b"options-test-secret-0123456789\n")
    code = chatd_main(["--director", "http://127.0.0.1:1", "--secret-file", str(secret), *argv])
    return code, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(("address", "says"), BAD[:8])
def test_chatd_refuses_an_undialable_advertise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], address: str, says: str
) -> None:
    code, err = run(tmp_path, capsys, "--advertise", address)
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"chatd: --advertise {address}: "), err
    assert says in err[0]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_wildcard_host_needs_advertise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    code, err = run(tmp_path, capsys, "--host", host)
    assert code == 2
    assert err == [
        f"chatd: --host {host} listens on every address of this host: give"
        " --advertise wss://ADDRESS:PORT, the address peers should dial"
    ]
