"""A discussion across an internet and two homes behind NAT (``tests.nat.topology``).

Real ``chat-director``, ``chatd`` and ``chatctl`` run inside the namespaces with the
README's "Running a node" commands; a home node advertises its own LAN address, as an
operator at home would (THIS-HOST is the only address it has). Every check goes through
``chatctl`` on the host, or the director's log.

Node-ids are random and rank nodes of one priority, so which node coordinates is luck:
the scenarios that need a home node to outrank the public ones (the issue's common case,
4 in 5 with one public node and four at home) give home nodes a higher ``--priority``,
so the outcome is the same on every run: the core ranks reachable nodes above
dial-out-only ones (issue 13), whatever their priorities.

Needs root, ``ip netns`` and ``iptables`` (skipped otherwise); ``make test-nat`` runs it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence

import pytest

from chat_testing.process import Process
from chat_testing.waiting import WaitTimeout, overall_deadline, wait_until
from tests.nat.topology import DIRECTOR, HOMES, PUBLIC, NatNetwork, unavailable
from tests.netlab.checks import WAIT, agreed, have, host_of, lab_on, ready_id
from tests.netlab.lab import Lab
from tests.netlab.readme import readme_commands

pytestmark = pytest.mark.nat

HOME_NODES = tuple(name for _, _, nodes in HOMES.values() for name in nodes)
PORT = 8701  # the README's peer port


@pytest.fixture
def lab() -> Iterator[Lab]:
    """The topology; on exit (pass or fail) every process killed, every namespace gone."""
    if why_not := unavailable():
        pytest.skip(f"NAT tests: {why_not}")
    with lab_on(NatNetwork) as made:
        yield made


class Discussion:
    """The director and the nodes started so far on one ``Lab``, by host name."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.readme = readme_commands()
        self.network = lab.network
        assert isinstance(self.network, NatNetwork)
        self.ids: dict[str, str] = {}
        self.nodes: dict[str, Process] = {}
        lab.shell(DIRECTOR, self.readme.secret)
        for name in self.network.hosts:
            if name != DIRECTOR:
                lab.copy_secret(DIRECTOR, name)
        self.director = lab.start(DIRECTOR, self.readme.director, "chat-director")
        self.director.wait_event("director.ready", WAIT)

    def start_first(self, name: str, priority: int = 0) -> str:
        """The first node: started, then waited for as coordinator (so the director's
        start-up grace cannot hand the discussion to whichever node asks next)."""
        node_id = self.start(name, priority)
        wait_until(lambda: self.coordinator_of(name), WAIT, f"{name} to coordinate")
        return node_id

    def start(self, name: str, priority: int = 0) -> str:
        """chatd on ``name`` advertising its own address; its node-id once ready."""
        assert isinstance(self.network, NatNetwork)
        argv = self.readme.node_for(PUBLIC[DIRECTOR], self.network.addresses[name], name)
        node = self.lab.start(name, [*argv, "--priority", str(priority)], "chatd")
        self.nodes[name] = node
        self.ids[name] = ready_id(node)
        return self.ids[name]

    def joined(self, names: Sequence[str]) -> str:
        """The coordinator once every node in ``names`` lists exactly them; else a
        ``WaitTimeout`` saying what each of them shows."""
        try:
            return wait_until(lambda: agreed(self.lab, names, self.ids), WAIT, f"{names} to join")
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}\n{self.views(names)}") from None

    def views(self, names: Sequence[str]) -> str:
        """One line per node: its role, term, coordinator and members (by host name)."""
        host = {node_id: name for name, node_id in self.ids.items()}
        lines = []
        for name in names:
            status = self.lab.status(name)
            members = sorted(host.get(m["node-id"], "?") for m in status["members"])
            coordinator = host.get(status["coordinator"], status["coordinator"])
            lines.append(
                f"{name}: {status['role']} term {status['term']}, coordinator {coordinator},"
                f" members {members}"
            )
        return "\n".join(lines)

    def everyone_hears_everyone(self, names: Sequence[str], text: str) -> None:
        """Each node in ``names`` sends ``text``; every one of them delivers all."""
        for name in names:
            self.lab.chatctl(name, "send", f"{text} from {name}")
        sent = {(self.ids[name], f"{text} from {name}") for name in names}
        wait_until(lambda: have(self.lab, names, sent), WAIT, f"every {text!r} on {names}")

    def coordinator_of(self, name: str) -> bool:
        return bool(self.lab.status(name)["role"] == "coordinator")


def connects(lab: Lab, name: str, address: str, port: int) -> bool:
    """Whether a TCP connect from host ``name`` to ``address:port`` succeeds (3 s)."""
    probe = (
        "import socket, sys\n"
        "try: socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()\n"
        "except OSError: sys.exit(1)\n"
    )
    return lab.run(name, [sys.executable, "-c", probe, address, str(port)]).returncode == 0


def test_homes_dial_out_nothing_dials_in_and_the_director_tells_which_is_which(lab: Lab) -> None:
    with overall_deadline(120, "the topology test"):
        chat = Discussion(lab)
        net = chat.network
        assert isinstance(net, NatNetwork)
        chat.start_first("pub1", priority=1)
        chat.start("a1")
        chat.start("a2")
        chat.joined(["pub1", "a1", "a2"])
        # The NAT is real: a home dials the internet and its own LAN, nobody dials in.
        assert connects(lab, "a1", net.addresses["pub1"], PORT)
        assert connects(lab, "a1", net.addresses["a2"], PORT)
        assert not connects(lab, "pub1", net.addresses["a1"], PORT)
        assert not connects(lab, "b1", net.addresses["a1"], PORT)
        assert not connects(lab, "b1", HOMES["a"][0], PORT)  # no port forwarding
        # The director saw where each came from and dialed back only the public node.
        for name, reachable in (("pub1", True), ("a1", False)):
            verdict = chat.director.wait_event(
                "director.dialback", WAIT, **{"node-id": chat.ids[name]}
            )
            observed = net.addresses[name] if reachable else HOMES["a"][0]
            assert verdict["observed"] == observed, verdict
            assert verdict["reachable"] is reachable, verdict
        refused = chat.director.find_events("director.dialback", **{"node-id": chat.ids["a1"]})
        assert {e["result"] for e in refused} == {"not-dialed"}, refused


def test_two_nodes_in_one_home_link_directly(lab: Lab) -> None:
    with overall_deadline(120, "the one-home test"):
        chat = Discussion(lab)
        chat.start_first("pub1", priority=1)
        a1, a2 = chat.start("a1"), chat.start("a2")
        assert chat.joined(["pub1", "a1", "a2"]) == chat.ids["pub1"]

        def linked(name: str, peer: str) -> bool:
            links = {m["node-id"]: m["link"] for m in lab.json_lines(name, "who")}
            return links.get(chat.ids[peer]) == "up"

        # Over their LAN addresses, the only ones they advertise: the link is direct.
        wait_until(lambda: linked("a1", "a2") and linked("a2", "a1"), WAIT, "a1 <-> a2")
        peers = {p["node-id"] for p in lab.status("a1")["peers"]}
        assert a2 in peers, peers
        assert a1 in {p["node-id"] for p in lab.status("a2")["peers"]}
        chat.everyone_hears_everyone(["pub1", "a1", "a2"], "hello")


def test_everyone_joins_and_every_message_reaches_everyone(lab: Lab) -> None:
    with overall_deadline(150, "the everyone-joins test"):
        chat = Discussion(lab)
        chat.start_first("pub1")
        for name in HOME_NODES:
            chat.start(name, priority=1)
        everyone = ["pub1", *HOME_NODES]
        # Reachable outranks dial-out-only: pub1 coordinates over higher priorities.
        assert host_of(chat.ids, chat.joined(everyone)) == "pub1"
        chat.everyone_hears_everyone(everyone, "hello")
        # Each knows which it is, and who shows it of everyone.
        assert lab.status("pub1")["reachable"] is True
        assert lab.status("b1")["reachable"] is False
        assert lab.status("b1")["observed-address"] == HOMES["b"][0]
        shown = {m["node-id"]: m["reachable"] for m in lab.json_lines("a1", "who")}
        assert shown == {chat.ids[n]: n == "pub1" for n in everyone}, shown
        # The homes never link to each other: messages between them go through pub1.
        peers = {p["node-id"] for p in lab.status("a1")["peers"]}
        assert not peers & {chat.ids["b1"], chat.ids["b2"]}, peers


def test_a_home_node_starts_first(lab: Lab) -> None:
    with overall_deadline(150, "the home-first test"):
        chat = Discussion(lab)
        chat.start_first("a1")
        # Alone at home, a1 coordinates a discussion nobody outside can dial: status says so.
        warned = lambda: "no member can be dialed" in lab.status("a1")["warning"]  # noqa: E731
        wait_until(warned, WAIT, "a1's status to warn that nobody can be dialed")
        everyone = ["a1", "pub1", "a2", "b1", "b2"]
        for name in everyone[1:]:
            chat.start(name)
        # pub1 cannot dial a1: it starts above a1's term, and a1 follows it (the director).
        assert host_of(chat.ids, chat.joined(everyone)) == "pub1"
        chat.everyone_hears_everyone(everyone, "hello")
        assert lab.status("a1")["warning"] == ""  # pub1 can be dialed


def test_the_public_coordinator_is_killed_while_another_public_node_remains(lab: Lab) -> None:
    with overall_deadline(180, "the coordinator-lost test"):
        chat = Discussion(lab)
        chat.start_first("pub1", priority=2)
        chat.start("pub2")
        for name in HOME_NODES:
            chat.start(name, priority=1)
        everyone = ["pub1", "pub2", *HOME_NODES]
        coordinator = chat.joined(everyone)
        assert host_of(chat.ids, coordinator) == "pub1"
        chat.everyone_hears_everyone(everyone, "before")

        # pub1's host vanishes: its link first (no FIN reaches anyone), then kill -9.
        lab.network.link("pub1", up=False)
        lab.crash("pub1")
        survivors = everyone[1:]
        assert host_of(chat.ids, chat.joined(survivors)) == "pub2"
        chat.everyone_hears_everyone(survivors, "after")
