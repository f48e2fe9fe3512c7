"""deploy/kube/ as `podman kube play` runs it, unchanged: the director Deployment (its
Service's name given as a network alias, podman having no Services), three chatd pods that
advertise their pod addresses, the group secret as a Kubernetes Secret mounted as a file,
read-only root, resource limits, the probes as podman health checks, and teardown with
`podman kube down`."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.container.podman import (
    UID,
    chatctl,
    delivered,
    health,
    inspect,
    joined,
    podman,
    status,
    wait_for,
)

KUBE = Path(__file__).resolve().parents[2] / "deploy" / "kube"
DIRECTOR, CHATD = KUBE / "director.yaml", KUBE / "chatd.yaml"
# The names the manifests give (podman names a Deployment's pods NAME-pod-0, -1, ...).
SECRET = "chat-secret"
DIRECTOR_POD = "chat-director-pod-0"
NODE_PODS = [f"chatd-pod-{i}" for i in range(3)]
# What podman needs on hosts that cannot set its default limits and where crun fails:
# `kube play` has no --ulimit or --runtime, so they come from a containers.conf of our own.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""


@attrs.frozen
class Kube:
    network: str
    secret: str
    secret_yaml: Path


def secret_manifest(path: Path, secret_file: Path) -> None:
    """The Secret as deploy/README.md makes it (kubectl, offline), or the same by hand."""
    if shutil.which("kubectl"):
        out = subprocess.run(
            [
                *("kubectl", "create", "secret", "generic", SECRET),
                *(f"--from-file=secret={secret_file}", "--dry-run=client", "--output=yaml"),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    else:
        data = base64.b64encode(secret_file.read_bytes()).decode()
        out = (
            f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {SECRET}\ndata:\n  secret: {data}\n"
        )
    path.write_text(out)


def existing() -> list[str]:
    """Objects with the manifests' names already on this host: the test would replace them."""
    found = [
        p
        for p in [DIRECTOR_POD, *NODE_PODS]
        if podman("pod", "exists", p, check=False).returncode == 0
    ]
    if podman("secret", "inspect", SECRET, check=False).returncode == 0:
        found.append(f"secret {SECRET}")
    if podman("volume", "exists", SECRET, check=False).returncode == 0:
        found.append(f"volume {SECRET}")
    return found


@pytest.fixture
def kube(run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kube]:
    conf = tmp_path / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    monkeypatch.setenv("CONTAINERS_CONF", str(conf))
    if taken := existing():
        pytest.fail(f"this host already has {', '.join(taken)}; remove them or test elsewhere")
    secret = secrets.token_urlsafe(32)
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    secret_yaml = tmp_path / "chat-secret.yaml"
    secret_manifest(secret_yaml, secret_file)
    podman("network", "create", run_id)
    try:
        (info,) = json.loads(podman("network", "inspect", run_id).stdout)
        assert info["dns_enabled"], "no DNS on podman networks: run deploy/setup-podman.sh"
        yield Kube(run_id, secret, secret_yaml)
    finally:
        for manifest in (CHATD, DIRECTOR):
            podman("kube", "down", str(manifest), check=False)
        podman("pod", "rm", "--force", DIRECTOR_POD, *NODE_PODS, check=False)
        podman("secret", "rm", SECRET, check=False)
        podman("volume", "rm", "--force", SECRET, check=False)
        podman("network", "rm", run_id, check=False)


def pod_ip(pod: str, network: str) -> str:
    infra = podman("pod", "inspect", "--format", "{{.InfraContainerID}}", pod).stdout.strip()
    networks = json.loads(inspect(infra, "{{json .NetworkSettings.Networks}}"))
    return str(networks[network]["IPAddress"])


def test_the_manifests_run_unchanged_under_podman(kube: Kube) -> None:
    podman("kube", "play", "--network", kube.network, str(kube.secret_yaml))
    podman("kube", "play", "--network", f"{kube.network}:alias=chat-director", str(DIRECTOR))
    podman("kube", "play", "--network", kube.network, str(CHATD))
    nodes = {pod: f"{pod}-chatd" for pod in NODE_PODS}
    for pod, container in nodes.items():
        logs = [f"{DIRECTOR_POD}-director", *nodes.values()]
        wait_for(f"{pod} sees three members", joined(container, 3), logs=logs)

    # Each node is named after its pod and known by its pod's address.
    first = next(iter(nodes.values()))
    members = [json.loads(line) for line in chatctl(first, "who", "--json").stdout.splitlines()]
    assert {m["name"]: m["public-address"] for m in members} == {
        pod: f"wss://{pod_ip(pod, kube.network)}:8701" for pod in NODE_PODS
    }

    text = f"hello across pods {uuid.uuid4()}"
    chatctl(nodes["chatd-pod-1"], "send", text)
    for pod, container in nodes.items():
        wait_for(f"{pod} delivers the message", delivered(container, text))

    director = f"{DIRECTOR_POD}-director"
    for container, memory in [(director, 128), *((c, 256) for c in nodes.values())]:
        assert inspect(container, "{{.HostConfig.ReadonlyRootfs}}") == "true"
        assert inspect(container, "{{.HostConfig.Memory}}") == str(memory * 2**20)
        assert podman("exec", container, "id", "-u").stdout.strip() == str(UID)
        # The Secret, mounted as a file. podman 4.3 writes a Secret's data still base64-
        # encoded (4.4 decodes it); every pod reads the same file, so they agree.
        mounted = podman("exec", container, "cat", "/run/chat/secret").stdout
        encoded = base64.b64encode((kube.secret + "\n").encode()).decode()
        assert mounted in {kube.secret + "\n", encoded}
        assert text not in podman("logs", container).stdout
    assert all(status(c)["secure"] for c in nodes.values())  # type: ignore[index]

    # chatd is the container's PID 1 (the shell execs it): SIGHUP reads the secret again,
    # as a rotation needs (deploy/README.md).
    reloaded = nodes["chatd-pod-2"]
    podman("exec", reloaded, "sh", "-c", "kill -HUP 1")
    wait_for(
        "chatd-pod-2 reads its secret again",
        lambda: '"secret.reloaded"' in podman("logs", reloaded).stdout,
    )

    # The liveness probes, run by podman as health checks.
    assert health(director) == (0, "healthy")
    for container in nodes.values():
        assert health(container) == (0, "healthy")

    # Stopping a pod sends SIGTERM: each node leaves and exits 0. Then kube down.
    for pod, container in nodes.items():
        podman("pod", "stop", "--time", "30", pod)
        assert inspect(container, "{{.State.ExitCode}}") == "0"
    for manifest in (CHATD, DIRECTOR):
        podman("kube", "down", str(manifest))
    for pod in [DIRECTOR_POD, *NODE_PODS]:
        assert podman("pod", "exists", pod, check=False).returncode == 1
