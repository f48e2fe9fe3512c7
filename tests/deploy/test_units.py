"""Static checks of the deployment files: the systemd units and the Containerfile.

systemd is not PID 1 on the machines this runs on, so the units cannot be started; they
are checked with ``systemd-analyze verify`` and ``systemd-analyze security --offline=yes``,
which work on unit files alone.

``verify`` also checks that each ExecStart= program exists and is executable. The units
name ``/opt/chat/venv/bin/...`` (the documented install path), which is absent on a
development machine. So verification is done twice, both honest:

* the units exactly as shipped, accepting from ``verify`` only the one complaint
  "Command /opt/chat/venv/bin/X is not executable" and only when that file is really
  missing (when the venv is installed, no complaint at all is accepted);
* a copy of the units in which only that program path is replaced by an existing stub
  executable: ``verify`` must then exit 0 and print nothing.

tests/systemd (``make test-systemd``) runs the units under a real systemd as well.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "systemd"
VENV_BIN = "/opt/chat/venv/bin"
# unit file name -> the console script it starts
UNITS = {
    "chatd.service": "chatd",
    "chatd@.service": "chatd",
    "chat-director.service": "chat-director",
}
# unit file name -> its RuntimeDirectory=, where the service's copy of the secret lives
RUNTIME_DIRS = {
    "chatd.service": "chatd",
    "chatd@.service": "chatd-%i",
    "chat-director.service": "chat-director",
}
SECRET = "/etc/chat/secret"
MAX_EXPOSURE = 1.5
WATCHDOG = "20s"  # chat.notify pings at half of it
RELOAD_SIGNAL = """/bin/sh -c 'kill -HUP "$MAINPID"'"""

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections -> key -> every value assigned, in order (continuation lines joined)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith(("#", ";"))):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    for line in logical:
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def load(name: str) -> Unit:
    return parse_unit((UNIT_DIR / name).read_text())


def last(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is not set"
    return values[-1]


def run_analyze(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=60,
        check=False,
    )


# --- the units as written ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "command"), UNITS.items())
def test_unit_contract(name: str, command: str) -> None:
    unit = load(name)
    service = unit["Service"]
    assert last(unit, "Service", "Type") == "notify"
    assert last(unit, "Service", "Restart") == "on-failure"
    exec_start = shlex.split(last(unit, "Service", "ExecStart"))
    assert exec_start[0] == f"{VENV_BIN}/{command}"
    i = exec_start.index("--secret-file")
    assert exec_start[i + 1] == f"%t/{RUNTIME_DIRS[name]}/secret"
    assert "--insecure" not in exec_start
    assert any(f.startswith("-/etc/chat/") for f in service["EnvironmentFile"])
    assert "multi-user.target" in last(unit, "Install", "WantedBy")


@pytest.mark.parametrize("name", UNITS)
def test_reload_refreshes_the_secret_then_sends_sighup(name: str) -> None:
    """`systemctl reload` copies the secret file anew, then signals the main process: the
    rotation procedure (deploy/README.md). Not a credential: LoadCredential= is copied
    once, at start, so a reload would re-read the old secret."""
    unit = load(name)
    service = unit["Service"]
    assert "LoadCredential" not in service
    assert last(unit, "Service", "RuntimeDirectory") == RUNTIME_DIRS[name]
    assert last(unit, "Service", "RuntimeDirectoryMode") == "0700"
    copy = secret_copy_command(unit)
    assert service["ExecStartPre"] == [copy]
    assert service["ExecReload"] == [copy, RELOAD_SIGNAL]


def secret_copy_command(unit: Unit) -> str:
    """The privileged helper that copies the secret for the service (ExecStartPre=+)."""
    (command,) = unit["Service"]["ExecStartPre"]
    assert command.startswith("+/bin/sh -c "), command
    assert SECRET in command
    return command


@pytest.mark.parametrize("name", UNITS)
def test_secret_copy_helper(name: str, tmp_path: Path) -> None:
    """The helper itself, run for real with %t and /etc/chat/secret pointing at temporary
    files: the copy belongs to the runtime directory's owner (the service's user; as root,
    a uid other than ours is used to show the chown), mode 0400, is replaced whole on the
    next run, and a missing source fails the run and keeps the copy there is."""
    argv = shlex.split(secret_copy_command(load(name))[1:])
    run_dir = tmp_path / "run" / RUNTIME_DIRS[name].replace("%i", "alice")
    run_dir.mkdir(parents=True, mode=0o700)
    owner = 54321 if os.geteuid() == 0 else os.geteuid()
    os.chown(run_dir, owner, owner)
    source = tmp_path / "secret"
    argv = [
        a.replace("%t", str(tmp_path / "run")).replace("%i", "alice").replace(SECRET, str(source))
        for a in argv
    ]
    copy = run_dir / "secret"

    def helper() -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    source.write_text("first-secret-0123456789\n")
    source.chmod(0o600)
    done = helper()
    assert done.returncode == 0, done.stderr
    assert copy.read_text() == "first-secret-0123456789\n"
    info = copy.stat()
    assert (info.st_uid, info.st_gid) == (owner, owner)
    assert stat.S_IMODE(info.st_mode) == 0o400

    source.write_text("first-secret-0123456789\nsecond-secret-abcdefghij\n")
    done = helper()
    assert done.returncode == 0, done.stderr
    assert copy.read_text() == "first-secret-0123456789\nsecond-secret-abcdefghij\n"
    assert copy.stat().st_ino != info.st_ino  # renamed into place, never rewritten
    assert sorted(p.name for p in run_dir.iterdir()) == ["secret"]

    source.unlink()
    done = helper()
    assert done.returncode != 0
    assert copy.read_text() == "first-secret-0123456789\nsecond-secret-abcdefghij\n"


@pytest.mark.parametrize(
    ("name", "runtime", "env_file", "default_name"),
    [
        ("chatd.service", "chatd", "/etc/chat/chatd.env", "%H"),
        ("chatd@.service", "chatd-%i", "/etc/chat/chatd-%i.env", "%i"),
    ],
)
def test_chatd_socket_env_file_and_name(
    name: str, runtime: str, env_file: str, default_name: str
) -> None:
    """Each node its socket in its own runtime directory, its env file, and a name that is
    not the service's user ("chatd" for every node): the host's, or the instance's."""
    unit = load(name)
    assert last(unit, "Service", "RuntimeDirectory") == runtime
    assert last(unit, "Service", "RuntimeDirectoryMode") == "0700"
    exec_start = shlex.split(last(unit, "Service", "ExecStart"))
    assert exec_start[exec_start.index("--socket") + 1] == f"%t/{runtime}/control.sock"
    assert exec_start[exec_start.index("--director") + 1] == "${CHATD_DIRECTOR}"
    assert exec_start[exec_start.index("--name") + 1] == "${CHATD_NAME}"
    assert f"CHATD_NAME={default_name}" in unit["Service"]["Environment"]
    assert unit["Service"]["EnvironmentFile"] == [f"-{env_file}"]


def test_template_instances_have_their_own_user() -> None:
    unit = load("chatd@.service")
    assert last(unit, "Service", "DynamicUser") == "yes"
    assert last(unit, "Service", "User") == "chatd-%i"
    assert last(unit, "Service", "Group") == "chatd-%i"


# Settings that name the instance; every other [Service] setting of chatd@.service must be
# chatd.service's, so the two cannot drift apart (the sandbox above all).
PER_INSTANCE = {"Environment", "EnvironmentFile", "ExecStartPre", "ExecStart", "ExecReload"}


def test_template_is_chatd_service_per_instance() -> None:
    single, template = load("chatd.service")["Service"], load("chatd@.service")["Service"]
    for key in sorted((set(single) | set(template)) - PER_INSTANCE):
        if key in ("RuntimeDirectory", "User", "Group"):
            assert [v.replace("chatd-%i", "chatd") for v in template[key]] == single[key], key
        else:
            assert template.get(key) == single.get(key), key
    assert template["ExecReload"][1:] == single["ExecReload"][1:]
    assert [e for e in template["Environment"] if not e.startswith("CHATD_NAME=")] == [
        e for e in single["Environment"] if not e.startswith("CHATD_NAME=")
    ]


@pytest.mark.parametrize("name", UNITS)
def test_watchdog(name: str) -> None:
    assert last(load(name), "Service", "WatchdogSec") == WATCHDOG


@pytest.mark.parametrize("name", UNITS)
def test_unit_hardening(name: str) -> None:
    unit = load(name)
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "MemoryDenyWriteExecute": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }
    for key, value in expected.items():
        assert last(unit, "Service", key) == value, key
    assert unit["Service"]["SystemCallFilter"][0] == "@system-service"


@needs_systemd_analyze
def test_verify_units_as_shipped() -> None:
    missing = {c for c in UNITS.values() if not os.access(f"{VENV_BIN}/{c}", os.X_OK)}
    allowed = {
        f"{name.replace('@.', '@i.')}: Command {VENV_BIN}/{command} is not executable:"
        " No such file or directory"
        for name, command in UNITS.items()
        if command in missing
    }
    proc = run_analyze("verify", "--man=no", *(UNIT_DIR / name for name in UNITS))
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    unexpected = [line for line in lines if line not in allowed]
    assert not unexpected, "systemd-analyze verify:\n" + "\n".join(lines)
    if not missing:
        assert proc.returncode == 0


@needs_systemd_analyze
def test_verify_units_with_stub_executables(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    units = []
    for name, command in UNITS.items():
        stub = bin_dir / command
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(stub.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        text = (UNIT_DIR / name).read_text()
        original = f"ExecStart={VENV_BIN}/{command} "
        assert text.count(original) == 1
        copy = tmp_path / name
        copy.write_text(text.replace(original, f"ExecStart={stub} "))
        units.append(copy)
    proc = run_analyze("verify", "--man=no", *units)
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0, output
    assert output == ""


@needs_systemd_analyze
@pytest.mark.parametrize("name", UNITS)
def test_security_exposure(name: str) -> None:
    proc = run_analyze("security", "--offline=yes", "--no-pager", UNIT_DIR / name)
    shown = name.replace("@.", "@i.")  # a template is rated as the instance "i"
    match = re.search(
        rf"Overall exposure level for {re.escape(shown)}: (\d+(?:\.\d+)?)", proc.stdout
    )
    assert match, f"no exposure level in:\n{proc.stdout}\n{proc.stderr}"
    assert float(match.group(1)) <= MAX_EXPOSURE, proc.stdout


# --- the container image ----------------------------------------------------------------


def containerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Containerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, args = (pending + line).partition(" ")
        out.append((instruction.upper(), args.strip()))
        pending = ""
    return out


def final_stage() -> list[tuple[str, str]]:
    instructions = containerfile_instructions()
    starts = [i for i, (ins, _) in enumerate(instructions) if ins == "FROM"]
    assert starts, "Containerfile has no FROM"
    return instructions[starts[-1] :]


def test_containerfile_base_is_a_build_argument() -> None:
    instructions = containerfile_instructions()
    first_from = next(i for i, (ins, _) in enumerate(instructions) if ins == "FROM")
    args = [a for ins, a in instructions[:first_from] if ins == "ARG"]
    assert "BASE=localhost/debian-python:bookworm" in args
    assert all(a.split()[0] == "${BASE}" for ins, a in instructions if ins == "FROM")


def test_containerfile_runs_as_non_root() -> None:
    users = [a for ins, a in final_stage() if ins == "USER"]
    assert users, "the final stage sets no USER (it would run as root)"
    user, _, group = users[-1].partition(":")
    assert user not in {"root", "0"}
    assert group not in {"root", "0"}


def test_containerfile_installs_the_lock() -> None:
    """The locked dependencies (hashes checked), then the project without touching them;
    the lock alone is copied first, so a change of the sources reuses that layer."""
    instructions = containerfile_instructions()
    runs = [a for ins, a in instructions if ins == "RUN"]
    locked = next(
        i
        for i, (ins, a) in enumerate(instructions)
        if ins == "RUN"
        and re.search(
            r"/opt/chat/venv/bin/pip install --require-hashes -r requirements\.lock(\s|$)", a
        )
    )
    copies = [a for ins, a in instructions[:locked] if ins == "COPY"]
    assert copies == ["requirements.lock ."], copies
    assert any(
        re.search(r"/opt/chat/venv/bin/pip install --no-deps --no-build-isolation \.(\s|$)", r)
        for r in runs
    )


def test_containerfile_defaults() -> None:
    stage = final_stage()
    assert not [a for ins, a in stage if ins == "ENTRYPOINT"], "ENTRYPOINT would block chatctl"
    cmd = [a for ins, a in stage if ins == "CMD"]
    assert cmd and "exec chatd " in cmd[-1]
    exposed = " ".join(a for ins, a in stage if ins == "EXPOSE").split()
    assert "8700" in exposed


def test_containerignore_keeps_the_context_small() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".containerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv"} <= patterns
    assert any("__pycache__" in p for p in patterns)


def test_build_script_is_strict_bash() -> None:
    script = ROOT / "deploy" / "build-image.sh"
    assert "set -euo pipefail" in script.read_text()
    assert os.access(script, os.X_OK)
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("name", "codes"),
    [
        ("chatd.service", {"2", "3", "4", "5"}),
        ("chatd@.service", {"2", "3", "4", "5"}),
        ("chat-director.service", {"2", "3"}),
    ],
)
def test_exits_a_restart_cannot_cure_are_not_restarted(name: str, codes: set[str]) -> None:
    # chat/exits.py: usage, cannot listen, a secret or a clock the director refuses.
    assert last(load(name), "Service", "Restart") == "on-failure"
    assert set(last(load(name), "Service", "RestartPreventExitStatus").split()) == codes
