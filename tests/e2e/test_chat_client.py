"""``chatctl chat`` in a real pseudo-terminal against real chatd processes.

The screen is read as a terminal shows it (pyte); every wait is for what the screen shows
(or for the program's exit), with a deadline.
"""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from chat_testing.control import send, status
from chat_testing.process import Process, binary
from chat_testing.processes import Cluster, Node, start_alice_and_bob
from chat_testing.waiting import wait_until
from chatctl.chat.render import colour_of
from tests.e2e.terminal import ENTER_ALTERNATE, LEAVE_ALTERNATE, Terminal

pytestmark = pytest.mark.e2e


class Pair(NamedTuple):
    cluster: Cluster
    director: str
    alice: Node
    bob: Node


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """alice (the coordinator) and bob, for the tests that leave both running."""
    with Cluster(tmp_path_factory.mktemp("chat")) as cluster:
        director = cluster.start_director()
        alice, bob = start_alice_and_bob(cluster, director.url)
        yield Pair(cluster, director.url, alice, bob)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    """Terminals opened by a test, closed (the client killed if still running) after it."""
    opened: list[Terminal] = []
    yield opened
    for term in opened:
        term.close()


def open_chat(
    terminals: list[Terminal], node: Node, rows: int = 24, columns: int = 80, ready: str = ""
) -> Terminal:
    argv = [binary("chatctl"), "--socket", str(node.socket), "chat"]
    term = Terminal(argv, rows, columns)
    terminals.append(term)
    term.wait_for(ready or f" {node.name} |")  # the status bar: the client is up
    return term


def tail_f(cluster: Cluster, node: Node) -> Process:
    return cluster.spawn("tail", [binary("chatctl"), "--socket", str(node.socket), "tail", "-f"])


def pyte_colour(name: str) -> str:
    """prompt_toolkit's ANSI colour name as pyte reports it (SGR 33 is its 'brown')."""
    return name.removeprefix("ansi").replace("yellow", "brown")


def colours_of(term: Terminal, word: str) -> set[str]:
    """The foreground colour of every occurrence of ``word`` on the screen."""
    found = set()
    for y, line in enumerate(term.lines):
        x = line.find(word)
        while x >= 0:
            found.add(term.screen.buffer[y][x].fg)
            x = line.find(word, x + 1)
    return found


def left_the_screen(term: Terminal) -> bool:
    """The client put the user's screen back: the alternate screen was left, last."""
    return term.raw.rfind(LEAVE_ALTERNATE) > term.raw.rfind(ENTER_ALTERNATE) >= 0


def after_screen(term: Terminal) -> str:
    """What the client printed once the user's screen was back."""
    return term.raw[term.raw.rfind(LEAVE_ALTERNATE) :].decode(errors="replace")


def test_a_line_typed_in_one_client_reaches_the_other_and_tail(
    pair: Pair, terminals: list[Terminal]
) -> None:
    cluster, _, alice, bob = pair
    tail = tail_f(cluster, bob)
    with_alice, with_bob = open_chat(terminals, alice), open_chat(terminals, bob)
    assert "alice | coordinator | 2 members | connected" in with_alice.text
    with_alice.line("hello bob, from the chat client")
    with_bob.wait_for("alice: hello bob, from the chat client")
    with_alice.wait(
        lambda s: "alice: hello bob, from the chat client" in s and "(sending)" not in s,
        "alice's own line delivered",
    )
    wait_until(
        lambda: any("alice: hello bob, from the chat client" in x for x in tail.stdout_lines),
        20,
        "chatctl tail -f to show it",
    )
    with_bob.line("/me waves")
    with_alice.wait_for("* bob waves")
    with_bob.wait_for("* bob waves")
    with_bob.line("//etc is a path, not a command")
    with_alice.wait_for("bob: /etc is a path, not a command")
    # A member has one colour in every client, from its node-id.
    assert colours_of(with_bob, "alice:") == {pyte_colour(colour_of(alice.node_id))}
    assert colours_of(with_alice, "alice:") == colours_of(with_bob, "alice:")
    assert colours_of(with_alice, "bob:") == {pyte_colour(colour_of(bob.node_id))}


def test_history_first_and_commands(pair: Pair, terminals: list[Terminal]) -> None:
    _, _, alice, bob = pair
    send(alice.socket, "said before the client started")
    term = open_chat(terminals, bob, ready="alice: said before the client started")
    term.type("/wh\t")  # Tab completes the command
    term.wait(lambda s: s.splitlines()[-1] == "> /who", "/who completed")
    term.type("\r")
    term.wait(lambda s: "NODE-ID" in s and "bob (you)" in s, "the members table")
    term.line("/status")
    term.wait_for("vector-clock:")
    term.type("\x1b[A\x1b[A")  # Up, Up: the input history, newest first
    term.wait(lambda s: s.splitlines()[-1] == "> /who", "/who back in the input line")
    term.type("\x15")  # Ctrl-U: the line erased
    term.wait(lambda s: s.splitlines()[-1] == ">", "an empty input line")
    term.line("/frobnicate")
    term.wait_for("unknown command /frobnicate: /help lists the commands")
    term.line("/help")
    term.wait_for("close this client; the node stays in the discussion")
    assert "said before the client started" not in term.text  # scrolled off the top
    term.type("\x1b[5~")  # PageUp
    term.wait(
        lambda s: "said before the client started" in s and "scrolled back: PageDown" in s,
        "the history scrolled back into view",
    )
    # What arrives meanwhile does not move the text being read; the bar counts it.
    screen = term.text.splitlines()[:-2]
    send(alice.socket, "said while bob reads back")
    term.wait_for("scrolled back: PageDown (1 new)")
    assert term.text.splitlines()[:-2] == screen
    term.type("\x1b[6~")  # PageDown
    term.wait(lambda s: "scrolled back" not in s, "back at the bottom")
    assert "alice: said while bob reads back" in term.text
    # Over the limit: a clear error, nothing sent, the text still there to edit.
    term.line("x" * 5000)
    term.wait_for("too long: 5000 bytes, the limit is 4096")
    assert set(term.lines[-1]) == {"x"} and "bob: xxx" not in term.text, term.text


def test_join_rename_and_leave_are_noticed(pair: Pair, terminals: list[Terminal]) -> None:
    with_alice = open_chat(terminals, pair.alice)
    carol = pair.cluster.spawn_node("carol", pair.director).wait_ready()
    with_alice.wait_for("-- carol joined")
    with_alice.wait_for("alice | coordinator | 3 members")
    with_carol = open_chat(terminals, carol, ready="carol | member | 3 members | connected")
    with_carol.line("/nick caroline")
    with_alice.wait_for("-- carol is now known as caroline")
    with_carol.wait_for(" caroline | member")  # her status bar
    with_carol.line("hello as caroline")
    with_alice.wait_for("caroline: hello as caroline")
    with_carol.line("/nick bad#name")
    with_carol.wait_for("/nick failed:")
    watching_carol = open_chat(terminals, carol, ready="caroline | member")
    with_carol.line("/leave")
    with_carol.wait_for("[y/N]")
    with_carol.line("y")
    assert with_carol.wait_exit() == 0
    # Another client of hers stays, and says why.
    watching_carol.wait_for("-- the node left the discussion; waiting for it to come back")
    watching_carol.wait_for("node left, waiting for it")
    with_alice.wait_for("-- caroline left")
    with_alice.wait_for("alice | coordinator | 2 members")
    assert carol.wait_exit() == 0


def test_resize_to_a_narrow_terminal_wraps_and_still_works(
    pair: Pair, terminals: list[Terminal]
) -> None:
    _, _, alice, bob = pair
    term = open_chat(terminals, bob)
    term.resize(12, 32)
    term.wait(lambda s: all(len(line) <= 32 for line in s.splitlines()), "a redraw at 32")
    words = " ".join(f"w{n:02d}" for n in range(30))
    send(alice.socket, words)
    screen = term.wait(lambda s: "w29" in s, "the long line, wrapped")
    shown = [line for line in screen.splitlines() if "w" in line and "w29" in screen]
    assert len([line for line in shown if line.lstrip().startswith("w")]) >= 2  # wrapped
    assert all(len(line) <= 32 for line in screen.splitlines())
    term.line("typed while narrow")
    term.wait_for("bob: typed while narrow")
    term.resize(24, 100)
    term.wait(lambda s: len(s.splitlines()) == 24, "a redraw at 24 rows")
    term.wait_for("bob: typed while narrow")


def test_quit_exits_0_and_the_node_stays(pair: Pair, terminals: list[Terminal]) -> None:
    bob = pair.bob
    term = open_chat(terminals, bob)
    term.line("/quit")
    assert term.wait_exit() == 0
    assert left_the_screen(term)
    assert status(bob.socket)["role"] == "member"


def test_ctrl_c_ctrl_d_and_signals_restore_the_terminal(
    pair: Pair, terminals: list[Terminal]
) -> None:
    bob = pair.bob
    term = open_chat(terminals, bob)
    term.type("half a line")
    term.wait_for("> half a line")
    term.type("\x03")
    assert term.wait_exit() == 130
    assert left_the_screen(term)
    assert "interrupted; the node stays in the discussion" in after_screen(term)
    term = open_chat(terminals, bob)
    term.type("\x04")  # on an empty line: the end of input
    assert term.wait_exit() == 0
    assert left_the_screen(term)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        term = open_chat(terminals, bob)
        term.child.kill(signum)
        assert term.wait_exit() == 128 + signum
        assert left_the_screen(term)
    assert status(bob.socket)["role"] == "member"


@pytest.mark.slow
def test_the_node_killed_is_said_then_picked_up_again_and_unsent_text_reported(
    cluster: Cluster, terminals: list[Terminal]
) -> None:
    director = cluster.start_director()
    alice, bob = start_alice_and_bob(cluster, director.url)
    with_alice = open_chat(terminals, alice)
    term = open_chat(terminals, bob)
    bob.kill()
    term.wait_for("-- the node went away")
    term.wait_for("node went away, waiting for it")  # the status bar
    term.line("words for later")
    term.wait_for("(waiting: node gone) words for later")
    # bob's node comes back (a new process on the same socket): the client picks it up
    # and sends what was typed meanwhile.
    bob = cluster.spawn_node("bob", director.url, socket=bob.socket).wait_ready()
    term.wait_for("-- connected to the node again")
    said = re.compile(r"bob(#\w+)?: words for later")
    with_alice.wait(lambda s: said.search(s) is not None, "alice to get the text")
    term.wait(lambda s: said.search(s) is not None and "(waiting" not in s, "it delivered")
    bob.kill()
    term.wait_for("node went away, waiting for it")
    term.line("words for nobody")
    term.wait_for("(waiting: node gone) words for nobody")
    term.line("/quit")
    assert term.wait_exit() == 0
    assert left_the_screen(term)
    assert "not sent (node gone): words for nobody" in after_screen(term)


@pytest.mark.slow
def test_leave_asks_first_then_the_node_leaves(cluster: Cluster, terminals: list[Terminal]) -> None:
    director = cluster.start_director()
    _, bob = start_alice_and_bob(cluster, director.url)
    term = open_chat(terminals, bob)
    term.line("/leave")
    term.wait_for("leave the discussion (the node stops)? [y/N]")
    term.line("n")
    term.wait_for("-- not leaving")
    assert bob.alive
    term.line("/leave")
    term.wait_for("[y/N]")
    term.line("y")
    assert term.wait_exit() == 0
    assert left_the_screen(term)
    assert "the node left the discussion" in after_screen(term)
    assert bob.wait_exit() == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_a_text_typed_before_the_node_is_ready_is_sent_once_it_joins(
    cluster: Cluster, terminals: list[Terminal]
) -> None:
    port = free_port()
    # No director yet: the node waits to join, its control socket open.
    carol = cluster.spawn_node("carol", f"http://127.0.0.1:{port}").wait_ready()
    term = open_chat(terminals, carol, ready="carol | joining")
    term.line("early words")
    term.wait_for("(waiting: node not ready) early words")
    cluster.start_director(port=port)
    term.wait(lambda s: "carol: early words" in s and "(waiting" not in s, "the text delivered")
    term.wait_for("carol | coordinator | 1 member | connected")
    assert carol.alive and signal.SIGTERM  # the node ran throughout
