"""An internet, public hosts and two homes behind NAT, made of network namespaces.

::

                        "internet" 10.78.0.0/24 (a bridge in its own namespace)
      +-------------+-------------+-------------+------------------+------------------+
      |             |             |             |                  |                  |
   director       pub1          pub2       router-a .21       router-b .22
   10.78.0.10   10.78.0.11   10.78.0.12    MASQUERADE out      MASQUERADE out
                                           nothing in          nothing in
                                                |                  |
                                    home-a LAN 192.168.78.0/24  home-b LAN 192.168.79.0/24
                                    (bridge in the router)      (bridge in the router)
                                       a1 .11     a2 .12           b1 .11     b2 .12

A router forwards from its LAN out to the internet with its own address as source
(``iptables -t nat ... MASQUERADE``) and lets in only the replies to what went out
(conntrack), as a home router does with no port forwarding. Public hosts have no route
to a home's LAN, and a home node's default route is its router, so a home node can dial
every public host and its own home, and nobody outside its home can dial it. The
addresses exist only inside these namespaces (10.78.0.0/24 and 192.168.78-79.0/24 are
unused on the machine; the test of ``make test-hosts`` uses 10.77.0.0/24).
"""

from __future__ import annotations

import shutil
import subprocess

from tests.netlab.netns import SWITCH, Namespaces, ip

INTERNET = "10.78.0"
DIRECTOR = "director"
PUBLIC = {DIRECTOR: f"{INTERNET}.10", "pub1": f"{INTERNET}.11", "pub2": f"{INTERNET}.12"}
# Home -> (the router's address on the internet, its LAN's first three octets, the nodes).
HOMES = {
    "a": (f"{INTERNET}.21", "192.168.78", ("a1", "a2")),
    "b": (f"{INTERNET}.22", "192.168.79", ("b1", "b2")),
}


def unavailable() -> str | None:
    """Why the routers cannot be made here (no iptables), or None if they can."""
    if shutil.which("iptables") is None:
        return "needs iptables (Debian package iptables)"
    return None


def in_namespace(namespace: str, *command: str) -> None:
    """``command`` inside ``namespace``, to completion; an AssertionError if it fails."""
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, *command], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} in {namespace}: {done.stderr.strip()}")


class NatNetwork(Namespaces):
    """The topology above; ``hosts`` are the director, the public nodes and the home
    nodes (the routers are namespaces only: nothing runs on them)."""

    def __init__(self) -> None:
        super().__init__()
        self.addresses: dict[str, str] = {}
        self.home_of: dict[str, str] = {}  # node -> its home; public hosts have none
        try:
            self.internet = self.add_namespace(SWITCH)
            self.add_bridge(self.internet)
            for name, address in PUBLIC.items():
                self.add_host(name, address, self.internet)
                self.addresses[name] = address
            for home, (public, lan, nodes) in HOMES.items():
                router = self._add_router(home, public, lan)
                for index, name in enumerate(nodes, start=11):
                    address = f"{lan}.{index}"
                    self.add_host(name, address, router, gateway=f"{lan}.1")
                    self.addresses[name] = address
                    self.home_of[name] = home
        except BaseException:
            self.close()
            raise

    def _add_router(self, home: str, public: str, lan: str) -> str:
        """A home router: ``eth0`` on the internet with ``public``, a LAN bridge with
        ``lan``.1, forwarding out with NAT and letting in only replies."""
        router = self.add_namespace(f"router-{home}")
        self.plug(router, "eth0", self.internet)
        ip("-n", router, "addr", "add", f"{public}/24", "dev", "eth0")
        self.add_bridge(router)
        ip("-n", router, "addr", "add", f"{lan}.1/24", "dev", "br0")
        in_namespace(router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        rules = (
            ("-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE"),
            ("-P", "FORWARD", "DROP"),
            ("-A", "FORWARD", "-i", "br0", "-o", "eth0", "-j", "ACCEPT"),
            # Within the LAN (seen here when the machine filters bridged traffic too).
            ("-A", "FORWARD", "-i", "br0", "-o", "br0", "-j", "ACCEPT"),
            ("-A", "FORWARD", "-i", "eth0", "-o", "br0", "-m", "conntrack",
             "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"),
        )  # fmt: skip
        for rule in rules:
            in_namespace(router, "iptables", *rule)
        return router
