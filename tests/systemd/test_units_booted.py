"""The shipped units under a real systemd: chat-director and two chatd@ instances booted
in a Debian tree with ``systemd-nspawn -b`` (deploy/test-systemd.sh; ``make test-systemd``).

The tests run in file order against one booted container, as an operator would go: set
up as deploy/README.md says, check readiness, names, sockets, chatctl, a message, the
status lines and watchdog, the sandbox, a secret rotation by ``systemctl reload``, a hung
node restarted by the watchdog, an operator group, the single-node unit, and ``systemctl
stop``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.systemd.machine import KEPT_JOURNALS, Machine, is_root, wait_until

ROOT = Path(os.environ.get("CHAT_SYSTEMD_ROOT", "/nonexistent"))
WHEELS = Path(os.environ.get("CHAT_SYSTEMD_WHEELS", "/nonexistent"))
LOCK = os.environ.get("CHAT_SYSTEMD_LOCK", "requirements.lock")
REPO = Path(__file__).resolve().parents[2]

NODES = {"alice": 8701, "bob": 8702}
UNITS = ["chat-director.service", "chatd@alice.service", "chatd@bob.service"]
MAX_EXPOSURE = 1.5
WATCHDOG = "20s"
TIMEOUT = 30.0  # for anything that happens on its own (joins, elections, restarts)

# The operator's commands of deploy/README.md ("Several nodes on one host"), run as they
# are from a copy of the working tree. Only the install differs: the cached tree's venv
# already holds the pinned dependencies, and the project is installed from its wheel.
SETUP = r"""
set -eu
cd /mnt/chat
/opt/chat/venv/bin/pip install -q --no-index --no-deps --force-reinstall /mnt/wheels/chat-*.whl
ln -sf /opt/chat/venv/bin/chatctl /usr/local/bin/chatctl

install -d -m 0755 /etc/chat
(umask 077; head -c 32 /dev/urandom | base64 > /etc/chat/secret)
chmod 0600 /etc/chat/secret
cat > /etc/chat/chatd-alice.env <<'EOF'
CHATD_PORT=8701
CHATD_OPTS=--priority 10
EOF
cat > /etc/chat/chatd-bob.env <<'EOF'
CHATD_NAME=bob
CHATD_PORT=8702
EOF

install -m 0644 systemd/chatd@.service systemd/chat-director.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now chat-director.service
systemctl enable --now chatd@alice.service chatd@bob.service
"""

# deploy/README.md, "Rotating the group secret": the three steps, each followed by a
# reload of every process.
ROTATION = [
    "(umask 077; cat OLD NEW > /etc/chat/secret.new) && mv /etc/chat/secret.new /etc/chat/secret",
    "(umask 077; cat NEW OLD > /etc/chat/secret.new) && mv /etc/chat/secret.new /etc/chat/secret",
    "(umask 077; cat NEW > /etc/chat/secret.new) && mv /etc/chat/secret.new /etc/chat/secret",
]
RELOAD = "systemctl reload chat-director 'chatd@*'"

# deploy/README.md, "Reaching chatd with chatctl": members of a group (carol) may use
# bob's socket, others (dave) may not.
OPERATORS = r"""
set -eu
groupadd --system chat-ops
useradd --no-create-home --shell /usr/sbin/nologin --groups chat-ops carol
useradd --no-create-home --shell /usr/sbin/nologin dave
mkdir -p /etc/systemd/system/chatd@bob.service.d
cat > /etc/systemd/system/chatd@bob.service.d/operators.conf <<'EOF'
[Service]
PrivateUsers=no
ProtectProc=default
RuntimeDirectoryMode=0711
SupplementaryGroups=chat-ops
SystemCallFilter=@chown
EOF
echo 'CHATD_OPTS=--control-gid chat-ops' >> /etc/chat/chatd-bob.env
systemctl daemon-reload
systemctl restart chatd@bob.service
"""

# deploy/README.md, "One node on a host" (here beside the instances: its own socket).
SINGLE = """install -m 0644 systemd/chatd.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable --now chatd.service
"""

pytestmark = pytest.mark.skipif(not is_root(), reason="systemd-nspawn needs root")


@pytest.fixture(scope="module")
def machine(request: pytest.FixtureRequest) -> Iterator[Machine]:
    binds = [(WHEELS, "/mnt/wheels"), (REPO, "/mnt/chat")]
    with tempfile.NamedTemporaryFile("w+", prefix="chat-systemd-boot-", suffix=".log") as log:
        box = Machine(ROOT, binds, log)
        try:
            state = wait_until(
                lambda: box.run("systemctl", "is-system-running", "--wait").stdout.strip(),
                90,
                "the boot to finish",
            )
            assert state in ("running", "degraded"), f"the container's systemd is {state}"
            yield box
            if request.session.testsfailed:
                keep_journal(box)
        finally:
            code = box.shutdown()
            log.seek(0)
            assert code == 0, f"systemd-nspawn exited {code}; its output:\n{log.read()[-3000:]}"


def keep_journal(box: Machine) -> None:
    """After a failure, the container's whole journal outlives it, in a file that the
    summary names (conftest.py)."""
    text = box.run("journalctl", "--no-pager", "-o", "short-monotonic").stdout
    with tempfile.NamedTemporaryFile(
        "w", prefix="chat-systemd-journal-", suffix=".log", delete=False
    ) as kept:
        kept.write(text)
    KEPT_JOURNALS.append(kept.name)


# --- helpers ------------------------------------------------------------------------------


def socket_of(name: str) -> str:
    return f"/run/chatd-{name}/control.sock"


def chatctl(box: Machine, name: str, *args: str, user: str | None = None) -> Any:
    """``chatctl --socket ... ARGS --json`` on node ``name``: the JSON lines it printed."""
    done = box.run("chatctl", "--socket", socket_of(name), *args, "--json", user=user)
    assert done.returncode == 0, (
        f"chatctl {' '.join(args)} on {name} as {user or 'root'} exited {done.returncode}:"
        f" {done.stderr.strip()}"
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def status(box: Machine, name: str) -> dict[str, Any]:
    (value,) = chatctl(box, name, "status")
    assert isinstance(value, dict)
    return value


def events(box: Machine, unit: str, event: str) -> list[dict[str, Any]]:
    """The unit's JSON log lines (journal) whose event is ``event``."""
    text = box.run("journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                found.append(record)
    return found


def logged(box: Machine, unit: str, event: str, at_least: int) -> list[dict[str, Any]] | None:
    """The unit's ``event`` lines once there are ``at_least`` of them."""
    found = events(box, unit, event)
    return found if len(found) >= at_least else None


def both_members(box: Machine) -> dict[str, dict[str, Any]] | None:
    """Each node's status once both are in the discussion with the same two members."""
    views = {name: status(box, name) for name in NODES}
    ids = {view["node-id"] for view in views.values()}
    for view in views.values():
        if view["role"] not in ("coordinator", "member"):
            return None
        if {m["node-id"] for m in view["members"]} != ids:
            return None
    return views


def exposure(box: Machine, unit: str) -> float:
    text = box.out("systemd-analyze", "security", "--no-pager", unit)
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+(?:\.\d+)?)", text)
    assert match, f"no exposure level for {unit} in:\n{text}"
    return float(match.group(1))


# --- the checks, in order -------------------------------------------------------------------


def test_setup_as_documented_reaches_ready(machine: Machine) -> None:
    """deploy/README.md's commands; `systemctl enable --now` returns once each Type=notify
    unit sent READY=1, so each control socket answers at once, without waiting."""
    machine.out("sh", "-c", SETUP, timeout=120)
    for unit in UNITS:
        props = machine.show(unit, "Type", "NotifyAccess", "ActiveState", "SubState")
        assert props == {
            "Type": "notify",
            "NotifyAccess": "main",
            "ActiveState": "active",
            "SubState": "running",
        }, f"{unit}: {props}\n{machine.journal(unit)}"
    for name in NODES:
        assert status(machine, name)["name"] == name, f"chatd@{name} answers under its name"


def test_installed_with_the_pinned_versions(machine: Machine) -> None:
    pins = {}
    for line in (REPO / LOCK).read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s;\\]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    listed = json.loads(machine.out("/opt/chat/venv/bin/pip", "list", "--format=json"))
    installed = {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in listed}
    assert installed.get("chat"), f"the project is not in /opt/chat/venv: {installed}"
    wrong = {n: (v, pins[n]) for n, v in installed.items() if n in pins and pins[n] != v}
    assert not wrong, f"installed (version, pinned) differ from {LOCK}: {wrong}"
    assert set(pins) & set(installed) >= {"trio", "cryptography", "structlog"}
    check = machine.run("/opt/chat/venv/bin/pip", "check")
    assert check.returncode == 0, f"pip check: {check.stdout}{check.stderr}"


def test_each_instance_has_its_own_name_port_user_and_socket(machine: Machine) -> None:
    uids = set()
    for name, port in NODES.items():
        view = status(machine, name)
        assert view["name"] == name
        assert view["address"] == f"wss://127.0.0.1:{port}", f"chatd@{name}: {view['address']}"
        props = machine.show(f"chatd@{name}.service", "User", "UID", "StatusErrno")
        assert props["User"] == f"chatd-{name}", props
        uids.add(props["UID"])
        assert machine.run("test", "-S", socket_of(name)).returncode == 0
    assert len(uids) == 2, f"the instances share a uid: {uids}"


def test_chatctl_as_root_and_as_the_service_user(machine: Machine) -> None:
    for name in NODES:
        assert status(machine, name)["name"] == name  # root
        (mine,) = chatctl(machine, name, "status", user=f"chatd-{name}")
        assert mine["name"] == name
    # One instance's user is not let into another's socket, and is told why.
    refused = machine.run("chatctl", "--socket", socket_of("alice"), "status", user="chatd-bob")
    assert refused.returncode == 77, f"chatd-bob on alice's socket: {refused}"
    assert "permission denied" in refused.stderr, refused.stderr


def test_a_message_crosses_from_one_node_to_the_other(machine: Machine) -> None:
    wait_until(lambda: both_members(machine), TIMEOUT, "alice and bob to be the two members")
    text = "hello bob, from alice under systemd"
    machine.out("chatctl", "--socket", socket_of("alice"), "send", text)
    got = wait_until(
        lambda: [m for m in chatctl(machine, "bob", "history") if m["message"] == text],
        TIMEOUT,
        "bob to deliver alice's message",
    )
    assert got[0]["name"] == "alice", got


def test_status_lines_show_role_members_and_term(machine: Machine) -> None:
    """STATUS= as `systemctl status` shows it, from `systemctl show -p StatusText`."""
    views = wait_until(lambda: both_members(machine), TIMEOUT, "both nodes to be members")

    def texts() -> dict[str, str] | None:
        got = {n: machine.show(f"chatd@{n}.service", "StatusText")["StatusText"] for n in NODES}
        want = {n: f"{n}: {v['role']}, 2 members, term {v['term']}" for n, v in views.items()}
        return got if got == want else None

    wait_until(texts, TIMEOUT, "each node's StatusText to match its chatctl status")
    coordinator = views["alice"]["coordinator"]
    term = views["alice"]["term"]
    port = {views[n]["node-id"]: p for n, p in NODES.items()}[coordinator]
    expected = f"coordinator {coordinator[:8]} at wss://127.0.0.1:{port}, term {term}"
    director = wait_until(
        lambda: machine.show("chat-director.service", "StatusText")["StatusText"] == expected,
        TIMEOUT,
        f"the director's StatusText to be {expected!r}",
    )
    assert director
    shown = machine.out("systemctl", "status", "--no-pager", "chatd@alice.service")
    assert f'Status: "alice: {views["alice"]["role"]}, 2 members' in shown, shown


def test_watchdog_is_set_and_pinged(machine: Machine) -> None:
    first = {}
    for unit in UNITS:
        props = machine.show(unit, "WatchdogUSec", "WatchdogTimestampMonotonic")
        assert props["WatchdogUSec"] == WATCHDOG, f"{unit}: {props}"
        first[unit] = int(props["WatchdogTimestampMonotonic"])

    def all_pinged_again() -> bool:
        return all(
            int(machine.show(u, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"])
            > first[u]
            for u in UNITS
        )

    # A ping every WatchdogSec/2 = 10 s: each unit's timestamp moves within that.
    wait_until(all_pinged_again, 15, "a WATCHDOG=1 ping from every unit")


def test_the_sandbox_is_in_force(machine: Machine) -> None:
    for unit in UNITS:
        pid = machine.show(unit, "MainPID")["MainPID"]
        fields = dict(
            line.split(":", 1) for line in machine.out("cat", f"/proc/{pid}/status").splitlines()
        )
        got = {k: fields[k].strip() for k in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp")}
        assert got == {
            "CapEff": "0000000000000000",
            "CapBnd": "0000000000000000",
            "NoNewPrivs": "1",
            "Seccomp": "2",
        }, f"{unit} (pid {pid}): {got}"
        assert fields["Uid"].split()[0] != "0", f"{unit} runs as root"
        # Root itself, in the service's mount namespace, cannot write: it is read-only.
        for path in ("/", "/etc", "/opt/chat/venv", "/var/lib"):
            done = machine.run("nsenter", "-t", pid, "-m", "touch", f"{path}/.chat-test")
            assert done.returncode != 0, f"{unit}: {path} is writable"
            assert "Read-only file system" in done.stderr, f"{unit}: {done.stderr}"


def test_security_exposure_of_the_running_units(machine: Machine) -> None:
    for unit in UNITS:
        level = exposure(machine, unit)
        assert level <= MAX_EXPOSURE, f"systemd-analyze security {unit}: {level}"


def test_reload_rotates_the_secret_without_leaving(machine: Machine) -> None:
    before = wait_until(lambda: both_members(machine), TIMEOUT, "both nodes to be members")
    pids = {u: machine.show(u, "MainPID")["MainPID"] for u in UNITS}
    machine.out(
        "sh", "-c", "cd /root && cp /etc/chat/secret OLD && head -c 32 /dev/urandom | base64 >NEW"
    )
    expected = [(2, False), (2, True), (1, False)]  # (secrets, first_changed) per step
    for step, (command, (count, changed)) in enumerate(zip(ROTATION, expected, strict=True), 1):
        machine.out("sh", "-c", f"cd /root && {command} && {RELOAD}")
        for unit, event in [
            ("chat-director.service", "director.secret.reloaded"),
            ("chatd@alice.service", "secret.reloaded"),
            ("chatd@bob.service", "secret.reloaded"),
        ]:
            seen = wait_until(
                partial(logged, machine, unit, event, step),
                TIMEOUT,
                f"{unit} to log {event} for step {step}",
            )
            last = seen[-1]
            assert (last["secrets"], last["first_changed"]) == (count, changed), (
                f"{unit}, step {step}: {last}"
            )
    new = machine.out("cat", "/root/NEW")
    for name in NODES:
        assert machine.out("cat", f"/run/chatd-{name}/secret") == new, f"chatd@{name}'s copy"
    # Nobody restarted or left: same processes, same term, same two members, links up.
    for unit in UNITS:
        props = machine.show(unit, "MainPID", "NRestarts")
        assert props == {"MainPID": pids[unit], "NRestarts": "0"}, f"{unit}: {props}"
    after = both_members(machine)
    assert after is not None, "a node left during the rotation"
    for name in NODES:
        assert after[name]["term"] == before[name]["term"], f"{name}: a new term"
        assert after[name]["peers"], f"{name}: no link up"
    text = "after the rotation, from bob"
    machine.out("chatctl", "--socket", socket_of("bob"), "send", text)
    wait_until(
        lambda: any(m["message"] == text for m in chatctl(machine, "alice", "history")),
        TIMEOUT,
        "alice to deliver bob's message after the rotation",
    )
    # A node started now has only the new secret: the director and alice must take it.
    machine.out("systemctl", "restart", "chatd@bob.service")
    wait_until(lambda: both_members(machine), TIMEOUT, "bob to join again with the new secret")


def test_a_hung_node_is_killed_by_the_watchdog_and_restarted(machine: Machine) -> None:
    unit = "chatd@alice.service"
    old = machine.show(unit, "MainPID")["MainPID"]
    machine.out("systemctl", "kill", "--signal=SIGSTOP", "--kill-who=main", unit)
    wait_until(
        lambda: "Failed with result 'watchdog'" in machine.journal(unit),
        40,
        "systemd to find alice's event loop silent past WatchdogSec=",
    )
    props = wait_until(
        lambda: (lambda p: p if p["ActiveState"] == "active" else None)(
            machine.show(unit, "ActiveState", "MainPID", "NRestarts")
        ),
        TIMEOUT,
        "alice to be restarted",
    )
    assert props["MainPID"] != old and props["NRestarts"] == "1", props
    wait_until(lambda: both_members(machine), 45, "the restarted alice to rejoin bob")


def test_an_operator_group_member_may_use_the_socket(machine: Machine) -> None:
    machine.out("sh", "-c", OPERATORS)
    (mine,) = chatctl(machine, "bob", "status", user="carol")
    assert mine["name"] == "bob", "carol (group chat-ops) uses bob's socket"
    listing = machine.out("stat", "-c", "%a %G", socket_of("bob")).split()
    assert listing == ["660", "chat-ops"], f"bob's socket: {listing}"
    refused = machine.run("chatctl", "--socket", socket_of("bob"), "who", user="dave")
    assert refused.returncode == 77, f"dave on bob's socket: {refused}"
    assert "uid" in refused.stderr and "may not open it" in refused.stderr, refused.stderr
    assert not events(machine, "chatd@bob.service", "control.chgrp_failed")
    # alice, without the drop-in, still lets in root and her own user only.
    carol_on_alice = machine.run("chatctl", "--socket", socket_of("alice"), "who", user="carol")
    assert carol_on_alice.returncode == 77, f"carol on alice's socket: {carol_on_alice}"
    wait_until(lambda: both_members(machine), TIMEOUT, "bob to rejoin after the restart")


def test_the_single_node_unit(machine: Machine) -> None:
    """chatd.service beside the instances: named after the host, its own socket, reload
    and stop."""
    unit, sock = "chatd.service", "/run/chatd/control.sock"
    machine.out("sh", "-c", f"cd /mnt/chat && {SINGLE}")
    host = machine.out("cat", "/proc/sys/kernel/hostname").strip()
    done = machine.run("chatctl", "--socket", sock, "status", "--json")
    assert done.returncode == 0, f"{unit} is not ready when started: {done.stderr}"
    assert json.loads(done.stdout)["name"] == host, f"{unit} is not named after the host"

    def members() -> int:
        view = json.loads(machine.out("chatctl", "--socket", sock, "status", "--json"))
        return len(view["members"])

    wait_until(lambda: members() == 3, TIMEOUT, f"{unit} to join alice and bob")
    machine.out("systemctl", "reload", unit)
    wait_until(partial(logged, machine, unit, "secret.reloaded", 1), TIMEOUT, "its reload")
    machine.out("systemctl", "stop", unit)
    props = machine.show(unit, "Result", "ExecMainCode", "ExecMainStatus")
    assert props == {"Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"}, props
    assert machine.run("test", "-e", "/run/chatd").returncode != 0, "/run/chatd is left"


def test_stop_exits_0_and_removes_the_runtime_directory(machine: Machine) -> None:
    for unit, runtime in [
        ("chatd@bob.service", "/run/chatd-bob"),
        ("chatd@alice.service", "/run/chatd-alice"),
        ("chat-director.service", "/run/chat-director"),
    ]:
        machine.out("systemctl", "stop", unit)
        props = machine.show(unit, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
        # ExecMainCode 1: CLD_EXITED, the process exited by itself (not killed).
        assert props == {
            "ActiveState": "inactive",
            "Result": "success",
            "ExecMainCode": "1",
            "ExecMainStatus": "0",
        }, f"{unit}: {props}\n{machine.journal(unit)}"
        assert machine.run("test", "-e", runtime).returncode != 0, f"{runtime} is left behind"
        if unit == "chatd@bob.service":
            wait_until(
                lambda: len(status(machine, "alice")["members"]) == 1,
                TIMEOUT,
                "alice to be the only member once bob left",
            )
