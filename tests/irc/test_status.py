"""``chatctl status`` shows the IRC gateway's address and password (and nothing without one)."""

from __future__ import annotations

import attrs

from chat.wire import IrcView
from chatctl.render import json_line, status_lines
from tests.chatctl.fakedaemon import STATUS


def test_status_shows_the_gateway_and_its_password() -> None:
    status = attrs.evolve(STATUS, irc=IrcView("127.0.0.1:6667", "pw-1234\x1b"))
    lines = status_lines(status)
    assert "irc:            127.0.0.1:6667 password pw-1234\\x1b" in lines
    assert '"irc":{"address":"127.0.0.1:6667","password":"pw-1234\\u001b"}' in json_line(status)


def test_without_a_gateway_there_is_no_irc_row() -> None:
    assert not [row for row in status_lines(STATUS) if row.startswith("irc:")]
    assert '"irc":null' in json_line(STATUS)
