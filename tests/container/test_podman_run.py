"""A director and three chatd nodes in containers (`podman run`), as deploy/README.md runs
them: a bridge network where each node advertises its container address, read-only root,
the group secret as a podman secret, chatctl through `podman exec`, the image's health
check, and `podman stop` ending each process cleanly."""

from __future__ import annotations

import ipaddress
import json
import secrets
import uuid
from collections.abc import Iterator

import attrs
import pytest

from tests.container.podman import (
    IMAGE,
    RESTRICTED_HOST,
    UID,
    chatctl,
    delivered,
    health,
    inspect,
    joined,
    last_health_output,
    podman,
    status,
    wait_for,
)

SECRET_FILE = "/run/chat/secret"  # the image's CHATD_SECRET_FILE
NODES = ("alice", "bob", "carol")


@attrs.define
class Network:
    name: str
    secret: str
    director_ip: str
    node_ips: dict[str, str]
    containers: list[str] = attrs.field(factory=list)

    def container(self, role: str) -> str:
        return f"{self.name}-{role}"

    def common(self, role: str) -> list[str]:
        """`podman run` options every container of the test gets."""
        name = self.container(role)
        self.containers.append(name)
        return [
            *RESTRICTED_HOST,
            "--detach",
            "--name",
            name,
            "--read-only",
            "--network",
            self.name,
            "--secret",
            f"{self.secret},type=mount,target={SECRET_FILE},uid={UID},gid={UID},mode=0400",
        ]


@pytest.fixture
def network(run_id: str) -> Iterator[Network]:
    """A bridge network and a group secret, and everything the test starts on them: removed
    afterwards, whatever happened."""
    podman("network", "create", run_id)
    net = Network(run_id, run_id, "", {})
    try:
        podman("secret", "create", run_id, "-", stdin=secrets.token_urlsafe(32) + "\n")
        (info,) = json.loads(podman("network", "inspect", run_id).stdout)
        hosts = ipaddress.ip_network(info["subnets"][0]["subnet"]).hosts()
        next(hosts)  # the gateway
        net.director_ip = str(next(hosts))
        net.node_ips = {node: str(next(hosts)) for node in NODES}
        yield net
    finally:
        if net.containers:
            podman("rm", "--force", "--time", "0", *net.containers, check=False)
        podman("secret", "rm", run_id, check=False)
        podman("network", "rm", run_id, check=False)


def run_node(net: Network, node: str) -> str:
    ip = net.node_ips[node]
    podman(
        "run",
        *net.common(node),
        "--ip",
        ip,
        "--env",
        f"CHATD_DIRECTOR=http://{net.director_ip}:8700",
        "--env",
        f"CHATD_OPTS=--advertise wss://{ip}:8701 --name {node}",
        IMAGE,  # its own health check, as built
    )
    return net.container(node)


def run_director(net: Network) -> str:
    podman(
        "run",
        *net.common("director"),
        "--ip",
        net.director_ip,
        "--health-cmd",
        "python3 -m director.probe",
        "--health-retries",
        "1",
        IMAGE,
        "chat-director",
        "--host",
        "0.0.0.0",
        "--port",
        "8700",
        "--secret-file",
        SECRET_FILE,
    )
    return net.container("director")


def test_the_image_checks_that_the_node_has_joined() -> None:
    out = podman("image", "inspect", "--format", "{{json .HealthCheck}}", IMAGE).stdout
    check = json.loads(out)
    assert check["Test"] == ["CMD", "chatctl", "--timeout", "5", "status", "--check"]


def test_three_nodes_in_containers(network: Network) -> None:
    net = network
    # A node with no director yet: it runs and answers, but has not joined: unhealthy (a
    # failed check; the status stays "starting" during the image's 30 s grace period).
    alice = run_node(net, "alice")
    early = wait_for("alice answers on its control socket", lambda: status(alice))
    assert early["role"] == "joining"
    assert health(alice) == (1, "starting")
    assert last_health_output(alice).startswith("chatctl: not joined: joining, 0 members")

    # The director comes: alice starts the discussion and the same container turns healthy.
    director = run_director(net)
    wait_for("alice joins", joined(alice, 1))
    assert health(alice) == (0, "healthy")
    assert health(director) == (0, "healthy")

    bob, carol = run_node(net, "bob"), run_node(net, "carol")
    containers = {"alice": alice, "bob": bob, "carol": carol}
    for node, container in containers.items():
        logs = [director, *containers.values()]
        wait_for(f"{node} sees three members", joined(container, 3), logs=logs)
        assert health(container) == (0, "healthy")

    # Every node is known by the container address it advertises, over TLS (the secret).
    members = [json.loads(line) for line in chatctl(bob, "who", "--json").stdout.splitlines()]
    assert {m["name"]: m["public-address"] for m in members} == {
        node: f"wss://{ip}:8701" for node, ip in net.node_ips.items()
    }
    assert all(status(c)["secure"] for c in containers.values())  # type: ignore[index]

    # A message sent on one node is delivered on all three.
    text = f"hello from bob {uuid.uuid4()}"
    chatctl(bob, "send", text)
    for node, container in containers.items():
        matches = wait_for(f"{node} delivers bob's message", delivered(container, text))
        assert [m["name"] for m in matches] == ["bob"]

    # Read-only root, the image's unprivileged user; no message text in any log.
    for container in [director, *containers.values()]:
        assert inspect(container, "{{.HostConfig.ReadonlyRootfs}}") == "true"
        assert podman("exec", container, "id", "-u").stdout.strip() == str(UID)
        assert podman("exec", container, "touch", "/opt/chat/x", check=False).returncode != 0
        printed = podman("logs", container)
        assert text not in printed.stdout + printed.stderr

    # SIGTERM: every node leaves the discussion and exits 0, then the director.
    for container in [carol, alice, bob, director]:
        podman("stop", "--time", "30", container)
        assert inspect(container, "{{.State.ExitCode}}") == "0"
    assert '"node.stopped"' in podman("logs", alice).stdout
