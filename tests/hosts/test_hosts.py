"""A discussion across hosts: network namespaces on one bridge, the README's commands.

Each host is a network namespace with a private address (10.77.0.0/24, which exists only
inside them); a director host and three node hosts. On each, the README's "Running a
node" commands run verbatim but for DIRECTOR, THIS-HOST and the name, with the group
secret made by the README's line on the director host and copied to the others. Every
check goes through ``chatctl`` run inside the host's namespace (``ip netns exec``).

Needs root and ``ip netns`` (skipped otherwise); ``make test-hosts`` runs it.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from functools import partial

import pytest

from chat_testing.process import Process
from chat_testing.waiting import overall_deadline, wait_until
from tests.netlab.checks import WAIT, agreed, have, host_of, lab_on, ready_id, same_order
from tests.netlab.lab import Lab
from tests.netlab.netns import Network
from tests.netlab.readme import ReadmeCommands, readme_commands

pytestmark = pytest.mark.hosts

DIRECTOR = "director"
NAMES = ("alice", "bob", "carol")
ADDRESSES = {DIRECTOR: "10.77.0.10", "alice": "10.77.0.11", "bob": "10.77.0.12",
             "carol": "10.77.0.13"}  # fmt: skip
TAIL_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<name>\S+): (?P<text>.*)$")


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Four hosts; on exit (pass or fail) every process killed and every namespace gone."""
    with lab_on(lambda: Network(ADDRESSES)) as made:
        yield made


def start_discussion(lab: Lab, readme: ReadmeCommands) -> tuple[dict[str, str], dict[str, Process]]:
    """Secret, director, three nodes, as the README says; node ids and processes by host."""
    lab.shell(DIRECTOR, readme.secret)
    secret = lab.dir(DIRECTOR) / "secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_bytes().strip()) >= 16
    for name in NAMES:
        lab.copy_secret(DIRECTOR, name)
    director = lab.start(DIRECTOR, readme.director, "chat-director")
    director.wait_event("director.ready", WAIT)
    nodes = {
        name: lab.start(name, readme.node_for(ADDRESSES[DIRECTOR], ADDRESSES[name], name), "chatd")
        for name in NAMES
    }
    ids = {name: ready_id(node) for name, node in nodes.items()}
    return ids, {DIRECTOR: director, **nodes}


def tail_shows(tail: Process, lines: set[tuple[str, str]]) -> bool:
    """Whether a ``chatctl tail -f`` printed a line ``name: text`` for each pair."""
    shown = {(m["name"], m["text"]) for line in tail.stdout_lines if (m := TAIL_LINE.match(line))}
    return lines <= shown


def test_three_hosts_from_the_readme_survive_the_loss_of_the_coordinators_host(lab: Lab) -> None:
    readme = readme_commands()
    with overall_deadline(240, "the multi-host test"):
        ids, processes = start_discussion(lab, readme)

        # Every node joins: each host sees all three members and one coordinator.
        coordinator = wait_until(lambda: agreed(lab, NAMES, ids), WAIT, "three members")

        tails = {name: lab.start(name, readme.tail, "chatctl tail -f") for name in NAMES}
        text = " ".join(readme.send[2:])
        for name in NAMES:
            lab.chatctl(name, *readme.send[1:])
        hellos = {(ids[name], text) for name in NAMES}
        wait_until(lambda: have(lab, NAMES, hellos), WAIT, "every hello on every host")
        same_order(lab, NAMES)
        for name, tail in tails.items():
            wait_until(
                partial(tail_shows, tail, {(n, text) for n in NAMES}),
                WAIT,
                f"{name}'s tail -f to show every hello",
            )

        # who shows the address peers dial, the advertised one, on every host.
        advertised = {f"wss://{ADDRESSES[name]}:8701" for name in NAMES}
        for name in NAMES:
            members = lab.json_lines(name, "who")
            assert {m["public-address"] for m in members} == advertised, members
            table = lab.chatctl(name, "who")
            assert all(address in table for address in advertised), table
            assert "0.0.0.0" not in table, table

        # The coordinator's host vanishes: its link first (no FIN reaches anyone), then
        # every process on it, kill -9.
        lost = host_of(ids, coordinator)
        survivors = [name for name in NAMES if name != lost]
        lab.network.link(lost, up=False)
        killed = lab.crash(lost)
        assert {processes[lost].pid, tails[lost].pid} <= set(killed), killed

        new = wait_until(
            lambda: agreed(lab, survivors, ids), WAIT, f"the survivors of {lost} to agree"
        )
        assert new != coordinator
        # The highest-ranked survivor (same priority everywhere: the highest node-id).
        assert new == max(ids[name] for name in survivors)

        lines = {name: f"after {lost} went, from {name}" for name in survivors}
        for name, line in lines.items():
            lab.chatctl(name, "send", line)
        after = {(ids[name], line) for name, line in lines.items()}
        wait_until(lambda: have(lab, survivors, after), WAIT, "the survivors' messages")
        same_order(lab, survivors)
        for name in survivors:
            wait_until(
                partial(tail_shows, tails[name], set(lines.items())),
                WAIT,
                f"{name}'s tail -f to go on",
            )
            assert tails[name].alive

        # The host comes back and its operator runs the same command: it joins the
        # discussion through the director (which now knows the new coordinator) and gets
        # the whole history.
        lab.network.link(lost, up=True)
        again = lab.start(
            lost, readme.node_for(ADDRESSES[DIRECTOR], ADDRESSES[lost], lost), "chatd again"
        )
        ids[lost] = ready_id(again)
        # It may rank above the survivors' coordinator: then it ends as coordinator.
        highest = max(ids.values())
        wait_until(lambda: agreed(lab, NAMES, ids) == highest, WAIT, f"{lost} to rejoin")
        wait_until(lambda: have(lab, NAMES, hellos | after), WAIT, f"{lost} to catch up")
        same_order(lab, NAMES)
        assert processes[DIRECTOR].alive


def test_a_partitioned_host_heals_and_both_sides_messages_end_up_everywhere(lab: Lab) -> None:
    readme = readme_commands()
    with overall_deadline(240, "the partition test"):
        ids, _ = start_discussion(lab, readme)
        coordinator = wait_until(lambda: agreed(lab, NAMES, ids), WAIT, "three members")

        # Cut the coordinator's host off: the director and the other two stay together.
        cut = host_of(ids, coordinator)
        rest = [name for name in NAMES if name != cut]
        lab.network.link(cut, up=False)
        wait_until(lambda: agreed(lab, rest, ids), WAIT, f"{rest} to go on without {cut}")
        wait_until(lambda: agreed(lab, [cut], ids) == ids[cut], WAIT, f"{cut} to be alone")

        sent = {name: (ids[name], f"during the partition, from {name}") for name in NAMES}
        for name, (_, line) in sent.items():
            lab.chatctl(name, "send", line)
        wait_until(lambda: have(lab, rest, {sent[n] for n in rest}), WAIT, "the majority's")
        wait_until(lambda: have(lab, [cut], {sent[cut]}), WAIT, f"{cut}'s own message")
        # The partition is real: neither side has the other's message yet.
        assert not have(lab, rest[:1], {sent[cut]})
        assert not have(lab, [cut], {sent[rest[0]]})

        lab.network.link(cut, up=True)
        wait_until(lambda: agreed(lab, NAMES, ids), WAIT, "one discussion again")
        wait_until(lambda: have(lab, NAMES, set(sent.values())), WAIT, "every message, everywhere")
        same_order(lab, NAMES)
