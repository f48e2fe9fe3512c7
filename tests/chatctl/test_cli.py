"""chatctl's commands, output formats and exit codes, in-process against the fake daemon."""

from __future__ import annotations

import io
import json
import socket
from importlib.metadata import version
from pathlib import Path

import attrs
import pytest

from chat.wire import (
    ERROR_CODES,
    HistoryResponse,
    MessageView,
    NickResponse,
    OkResponse,
    PresenceView,
    TaggedMessage,
    TaggedPresence,
    TailEnd,
    WhoResponse,
    unstructure,
)
from chatctl.__main__ import build_parser, main
from tests.chatctl.conftest import set_tz
from tests.chatctl.fakedaemon import (
    CAROL,
    MEMBER_VIEWS,
    MESSAGES,
    STATUS,
    Answer,
    FakeDaemon,
    error_line,
    line,
    message,
)

Capture = pytest.CaptureFixture[str]


def run(daemon: FakeDaemon, *argv: str) -> int:
    return main(["--socket", str(daemon.path), *argv])


def jsonl(text: str) -> list[object]:
    return [json.loads(row) for row in text.splitlines()]


# -- send --


def test_send_joins_words_and_prints_nothing(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "send", "hello", "big", "world") == 0
    assert daemon.requests == [{"op": "send", "text": "hello big world"}]
    assert capsys.readouterr() == ("", "")


def test_send_json_prints_the_accepted_message(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "send", "--json", "hi") == 0
    (printed,) = jsonl(capsys.readouterr().out)
    assert printed == unstructure(message(9, STATUS.node_id, "bob", "hi"))


def test_send_stdin_one_message_per_nonblank_line(
    daemon: FakeDaemon, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("one\n\n   \ntwo words\r\nthree"))
    assert run(daemon, "send", "-") == 0
    assert [r["text"] for r in daemon.requests] == ["one", "two words", "three"]
    assert capsys.readouterr() == ("", "")


def test_send_stdin_stops_at_first_failure(
    daemon: FakeDaemon, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = daemon.replies["send"]
    daemon.replies["send"] = lambda req: (
        Answer([error_line("too-large", "text over 4096 bytes")])
        if req["text"] == "big"
        else good(req)
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("ok\nbig\nnever\n"))
    assert run(daemon, "send", "-") == 10 + ERROR_CODES["too-large"]
    assert [r["text"] for r in daemon.requests] == ["ok", "big"]
    assert capsys.readouterr().err == "chatctl: stdin line 2: text over 4096 bytes (too-large)\n"


# -- tail and history --


def test_tail_last_n_human(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "tail", "-n", "2") == 0
    assert daemon.requests == [{"op": "tail", "follow": False, "last": 2, "events": True}]
    assert capsys.readouterr().out == "07:08:02 bob: hello 2\n07:08:03 alice: hello 3\n"


def test_tail_json(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "tail", "--json") == 0
    assert daemon.requests == [{"op": "tail", "follow": False, "last": 10, "events": False}]
    assert jsonl(capsys.readouterr().out) == [unstructure(m) for m in MESSAGES]


def test_tail_follow_cut_off_by_daemon_is_an_error(daemon: FakeDaemon, capsys: Capture) -> None:
    daemon.replies["tail"] = lambda _: Answer([line(OkResponse()), line(MESSAGES[0])], close=True)
    assert run(daemon, "tail", "-f", "-n", "1") == 74
    out, err = capsys.readouterr()
    assert out == "07:08:01 alice: hello 1\n"
    assert err == f"chatctl: chatd at {daemon.path} closed the connection\n"


def test_tail_follow_ended_by_the_node_leaving_is_a_success(
    daemon: FakeDaemon, capsys: Capture
) -> None:
    daemon.replies["tail"] = lambda _: Answer(
        [line(OkResponse()), line(MESSAGES[0]), line(TailEnd())], close=True
    )
    assert run(daemon, "tail", "-f", "-n", "1") == 0
    assert capsys.readouterr() == ("07:08:01 alice: hello 1\n", "-- node left\n")


def test_options_go_before_or_after_the_command(daemon: FakeDaemon, capsys: Capture) -> None:
    elsewhere = str(daemon.path.with_name("elsewhere.sock"))
    assert main(["send", "--socket", str(daemon.path), "hi"]) == 0
    assert main(["send", "--socket", str(daemon.path), "--timeout", "5", "--json", "hi"]) == 0
    assert main(["--socket", elsewhere, "status", "--socket", str(daemon.path)]) == 0
    assert main(["--socket", str(daemon.path), "--timeout", "5", "who"]) == 0  # not reset
    assert [r["op"] for r in daemon.requests] == ["send", "send", "status", "who"]
    capsys.readouterr()
    assert main(["status", "--socket", elsewhere]) == 69
    assert capsys.readouterr().err == f"chatctl: no chatd at {elsewhere} (is it running?)\n"


def test_bare_chatctl_prints_the_help_and_exits_2(capsys: Capture) -> None:
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == build_parser().format_help() and err == ""


def test_version(capsys: Capture) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"chatctl {version('chat')}\n"
    assert main(["--version"]) == 0


def test_history_human(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "history") == 0
    assert capsys.readouterr().out.splitlines() == [
        "07:08:01 alice: hello 1",
        "07:08:02 bob: hello 2",
        "07:08:03 alice: hello 3",
    ]


def test_history_json_one_message_per_line(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "history", "--json") == 0
    rows = jsonl(capsys.readouterr().out)
    assert rows == [unstructure(m) for m in MESSAGES]
    assert isinstance(rows[0], dict)
    assert set(rows[0]) == {
        "id",
        "node-id",
        "name",
        "timestamp",
        "message",
        "vector-clock",
        "display",
    }


def test_times_are_local(daemon: FakeDaemon, capsys: Capture) -> None:
    set_tz("IST-5:30")  # POSIX spelling of UTC+05:30; needs no tz database
    assert run(daemon, "history") == 0
    assert capsys.readouterr().out.splitlines()[0] == "12:38:01 alice: hello 1"


def test_unusable_timestamps_are_shown_raw(daemon: FakeDaemon, capsys: Capture) -> None:
    set_tz("EST5")  # west of UTC: year 1 would underflow when made local
    odd = [
        MessageView("x", "n", "eve", "0001-01-01T00:00:00Z", "old", {}),
        MessageView("y", "n", "eve", "yesterday\x1b[K", "vague", {}),
    ]
    daemon.replies["history"] = lambda _: Answer([line(HistoryResponse(odd))])
    assert run(daemon, "history") == 0
    assert capsys.readouterr().out.splitlines() == [
        "0001-01-01T00:00:00Z eve: old",
        "yesterday\\x1b[K eve: vague",
    ]


def test_control_characters_are_made_visible(daemon: FakeDaemon, capsys: Capture) -> None:
    hostile = message(1, name="ev\x1b[2Jil", text="a\x1b]0;pwned\x07b\nfake\tline\x9b\u202e")
    daemon.replies["history"] = lambda _: Answer([line({"ok": True, "messages": [hostile]})])
    assert run(daemon, "history") == 0
    out = capsys.readouterr().out
    assert out == "07:08:01 ev\\x1b[2Jil: a\\x1b]0;pwned\\x07b\\x0afake\tline\\x9b\\u202e\n"


# -- status and who --


def test_status_human(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "status") == 0
    lines = capsys.readouterr().out.splitlines()
    fields = dict(row.split(":", 1) for row in lines if not row.startswith(" "))
    assert {k: v.strip() for k, v in fields.items()} == {
        "node-id": STATUS.node_id,
        "name": "bob",
        "role": "member",
        "coordinator": STATUS.coordinator,
        "term": "4",
        "address": "ws://127.0.0.1:9002",
        "public-address": "ws://bob.example:9002",
        "neighbours": "a1a1a1a1a1a1 c3c3c3c3c3c3",
        "members": "3",
        "messages": "3",
        "vector-clock": "a1a1a1a1a1a1=2 b2b2b2b2b2b2=1",
        "peers": "a1a1a1a1a1a1 alice (heard 0.2 s ago, TLSv1.3 TLS_AES_256_GCM_SHA384)",
        "secure": "yes (group secret; every link TLS 1.3)",
        "reachable": "yes",
    }
    carol = "c3c3c3c3c3c3 carol (heard 1.5 s ago, TLSv1.3 TLS_AES_256_GCM_SHA384)"
    assert " " * 16 + carol in lines
    # Aligned: every value starts in the same column.
    assert len({len(row) - len(row[16:].lstrip()) for row in lines}) == 1


def test_status_json_is_one_status_object(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "status", "--json") == 0
    assert jsonl(capsys.readouterr().out) == [unstructure(STATUS)]


def test_who_table_shows_name_role_link_idle_and_dialable(
    daemon: FakeDaemon, capsys: Capture
) -> None:
    views = [MEMBER_VIEWS[0], MEMBER_VIEWS[1], attrs.evolve(MEMBER_VIEWS[2], reachable=False)]
    daemon.replies["who"] = lambda _: Answer([line(WhoResponse(views))])
    assert run(daemon, "who") == 0
    assert [r["op"] for r in daemon.requests] == ["who"]
    assert capsys.readouterr().out.splitlines() == [
        "NAME       ROLE         LINK  IDLE  DIALABLE  NODE-ID       ADDRESS",
        "alice      coordinator  up    12s   yes       a1a1a1a1a1a1  ws://alice.example:9001",
        "bob (you)  member       self  -     yes       b2b2b2b2b2b2  ws://bob.example:9002",
        "carol      member       down  2h    no        c3c3c3c3c3c3  ws://carol.example:9003",
    ]


def test_who_shows_display_names_escaped(daemon: FakeDaemon, capsys: Capture) -> None:
    twin = attrs.evolve(MEMBER_VIEWS[2], name="alice", display="alice#c3c3\x1b")
    daemon.replies["who"] = lambda _: Answer([line(WhoResponse([MEMBER_VIEWS[0], twin]))])
    assert run(daemon, "who") == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("alice#c3c3\\x1b  member")


# -- presence: notices, tagged events, nick, /me --

AT = "2024-05-06T07:09:00Z"


def presence(event: str, name: str, old: str | None = None) -> TaggedPresence:
    return TaggedPresence(presence=PresenceView(event, CAROL, name, name, old, AT))


PRESENCE = [
    presence("joined", "carol"),
    presence("renamed", "caz", "carol"),
    presence("coordinator", "caz"),
    presence("left", "caz"),
    presence("timed-out", "caz"),
    presence("rejoined", "caz"),
]


def test_tail_follow_human_interleaves_notices(daemon: FakeDaemon, capsys: Capture) -> None:
    daemon.replies["tail"] = lambda _: Answer(
        [
            line(OkResponse()),
            line(TaggedMessage(message=MESSAGES[0])),
            *map(line, PRESENCE),
            line(TaggedMessage(message=message(4, CAROL, "caz", "/me waves"))),
            line(TailEnd()),
        ],
        close=True,
    )
    assert run(daemon, "tail", "-f", "-n", "1") == 0
    assert daemon.requests == [{"op": "tail", "follow": True, "last": 1, "events": True}]
    lines = capsys.readouterr().out.splitlines()
    assert [row.split(" ", 1)[1] for row in lines] == [
        "alice: hello 1",
        "-- carol joined",
        "-- carol is now known as caz",
        "-- caz is now coordinator",
        "-- caz left",
        "-- caz left (timed out)",
        "-- caz rejoined",
        "* caz waves",
    ]


def test_tail_events_json_prints_tagged_lines(daemon: FakeDaemon, capsys: Capture) -> None:
    tagged = [TaggedMessage(message=MESSAGES[0]), PRESENCE[1]]
    daemon.replies["tail"] = lambda _: Answer(
        [line(OkResponse()), *map(line, tagged), line(TailEnd())], close=True
    )
    assert run(daemon, "tail", "-f", "--events", "--json") == 0
    assert jsonl(capsys.readouterr().out) == [unstructure(t) for t in tagged]


def test_nick_renames(daemon: FakeDaemon, capsys: Capture) -> None:
    daemon.replies["nick"] = lambda req: Answer([line(NickResponse(req["name"]))])
    assert run(daemon, "nick", "al") == 0
    assert run(daemon, "nick", "--json", "al") == 0
    assert daemon.requests == [{"op": "nick", "name": "al"}] * 2
    assert capsys.readouterr() == ('{"name":"al"}\n', "")


def test_nick_refused_says_why(daemon: FakeDaemon, capsys: Capture) -> None:
    daemon.replies["nick"] = lambda _: Answer(
        [error_line("bad-request", "a name cannot contain '#'")]
    )
    assert run(daemon, "nick", "a#b") == 10 + ERROR_CODES["bad-request"]
    assert capsys.readouterr().err == "chatctl: a name cannot contain '#' (bad-request)\n"


def test_who_json_one_member_per_line(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "who", "--json") == 0
    assert jsonl(capsys.readouterr().out) == [unstructure(m) for m in MEMBER_VIEWS]


def test_leave(daemon: FakeDaemon, capsys: Capture) -> None:
    assert run(daemon, "leave") == 0
    assert daemon.requests == [{"op": "leave"}]
    assert capsys.readouterr() == ("", "")


# -- errors and exit codes --


@pytest.mark.parametrize(("code", "n"), [*ERROR_CODES.items(), ("from-the-future", 0)])
def test_remote_errors_map_to_exit_codes(
    daemon: FakeDaemon, capsys: Capture, code: str, n: int
) -> None:
    daemon.replies["status"] = lambda _: Answer([error_line(code, "it went wrong")])
    assert run(daemon, "status") == 10 + n
    assert capsys.readouterr() == ("", f"chatctl: it went wrong ({code})\n")


def test_remote_error_message_cannot_drive_the_terminal(
    daemon: FakeDaemon, capsys: Capture
) -> None:
    daemon.replies["who"] = lambda _: Answer([error_line("internal", "x\n\x1b[1Ay")])
    assert run(daemon, "who") == 17
    assert capsys.readouterr().err == "chatctl: x\\x0a\\x1b[1Ay (internal)\n"


def test_no_daemon(sockdir: Path, capsys: Capture) -> None:
    path = sockdir / "missing.sock"
    assert main(["--socket", str(path), "status"]) == 69
    assert capsys.readouterr() == ("", f"chatctl: no chatd at {path} (is it running?)\n")


def test_stale_socket_file_is_no_daemon(sockdir: Path, capsys: Capture) -> None:
    path = sockdir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))  # bound, never listening: connect is refused
        assert main(["--socket", str(path), "who"]) == 69
    assert capsys.readouterr().err == f"chatctl: no chatd at {path} (is it running?)\n"


def test_socket_from_environment(
    daemon: FakeDaemon, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATD_SOCKET", str(daemon.path))
    assert main(["leave"]) == 0
    assert daemon.requests == [{"op": "leave"}]


def test_timeout(daemon: FakeDaemon, capsys: Capture) -> None:
    daemon.replies["status"] = lambda _: Answer([], hang=True)
    assert run(daemon, "--timeout", "0.2", "status") == 75
    assert capsys.readouterr().err == (
        f"chatctl: no answer from chatd at {daemon.path} within 0.2 s\n"
    )


def test_connection_closed_mid_answer(daemon: FakeDaemon, capsys: Capture) -> None:
    daemon.replies["history"] = lambda _: Answer([b'{"ok": true, "mess'], close=True)
    assert run(daemon, "history") == 74
    assert capsys.readouterr() == (
        "",
        f"chatctl: chatd at {daemon.path} closed the connection mid-answer\n",
    )


def test_connection_closed_without_answer(daemon: FakeDaemon, capsys: Capture) -> None:
    daemon.replies["leave"] = lambda _: Answer([], close=True)
    assert run(daemon, "leave") == 74
    assert "closed the connection without answering" in capsys.readouterr().err


@pytest.mark.parametrize(
    "answer", [b"not json\n", b"[1]\n", b'{"ok": true, "status": {"name": 3}}\n']
)
def test_malformed_answer(daemon: FakeDaemon, capsys: Capture, answer: bytes) -> None:
    daemon.replies["status"] = lambda _: Answer([answer])
    assert run(daemon, "status") == 76
    err = capsys.readouterr().err
    assert err.startswith("chatctl: unexpected answer from chatd: ")
    assert err.count("\n") == 1


# -- usage --


@pytest.mark.parametrize(
    "argv",
    [
        ["send"],
        ["tail", "-n", "-1"],
        ["nope"],
        ["--timeout", "0", "who"],
        ["who", "--timeout", "0"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: Capture) -> None:
    assert main(argv) == 2
    assert "usage: chatctl" in capsys.readouterr().err


def test_help_documents_every_remote_error_code(capsys: Capture) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out == build_parser().format_help()
    for code, n in ERROR_CODES.items():
        assert f"{10 + n} {code}" in out
