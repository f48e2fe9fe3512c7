"""Run commands on the hosts of ``Namespaces`` as an operator would on each machine.

Every host has its own working directory (where the README's ``secret`` file lives) and
its own ``XDG_RUNTIME_DIR``: on separate machines each chatd has its own default control
socket path, here the hosts share one filesystem, so without it the second chatd would
take the first one's path. Nothing else differs from an operator's shell: the same
commands, the project's console scripts on ``PATH``.

Long-running commands are ``chat_testing.process.Process`` objects (output kept in
memory); ``close`` kills every one of them and then the network, so nothing outlives a test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Self

from chat_testing.process import Process, child_env
from tests.netlab.netns import Host, Namespaces, kill_all_in


class Lab:
    def __init__(self, network: Namespaces, root: Path) -> None:
        self.network = network
        self.root = root
        self.processes: list[Process] = []
        self._env: dict[str, dict[str, str]] = {}
        venv_bin = str(Path(sys.executable).parent)
        for name in network.hosts:
            (self.dir(name) / "run").mkdir(parents=True, mode=0o700)
            env = child_env()
            env["PATH"] = f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}"
            env["XDG_RUNTIME_DIR"] = str(self.dir(name) / "run")
            self._env[name] = env

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def dir(self, name: str) -> Path:
        return self.root / name

    def _argv(self, name: str, command: list[str]) -> list[str]:
        return self.host(name).argv(["env", "-C", str(self.dir(name)), *command])

    def start(self, name: str, command: list[str], label: str) -> Process:
        """``command`` in the background on host ``name``."""
        process = Process(f"{label}@{name}", self._argv(name, command), self._env[name])
        self.processes.append(process)
        return process

    def run(
        self, name: str, command: list[str], timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """``command`` on host ``name``, to completion (returncode, stdout, stderr kept)."""
        return subprocess.run(
            self._argv(name, command),
            env=self._env[name],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def shell(self, name: str, line: str) -> None:
        done = self.run(name, ["sh", "-c", line])
        assert done.returncode == 0, f"{line!r} on {name}: {done.stderr}"

    def chatctl(self, name: str, *args: str) -> str:
        """``chatctl ARGS`` on host ``name``; its stdout, or an AssertionError."""
        done = self.run(name, ["chatctl", *args])
        if done.returncode != 0:
            raise AssertionError(f"chatctl {' '.join(args)} on {name}: exit "
                                 f"{done.returncode}: {done.stderr.strip()}")  # fmt: skip
        return done.stdout

    def json_lines(self, name: str, *args: str) -> list[Any]:
        return [json.loads(line) for line in self.chatctl(name, *args, "--json").splitlines()]

    def status(self, name: str) -> dict[str, Any]:
        (status,) = self.json_lines(name, "status")
        assert isinstance(status, dict)
        return status

    def copy_secret(self, source: str, to: str) -> None:
        """The operator's scp of the group secret, mode kept (0600)."""
        shutil.copy2(self.dir(source) / "secret", self.dir(to) / "secret")

    def crash(self, name: str) -> list[int]:
        """SIGKILL every process on host ``name`` (its chatd and chatctl alike)."""
        killed = kill_all_in(self.host(name).namespace)
        for process in self.processes:
            if process.pid in killed:
                process.wait_exit()
        return killed

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        self.network.close()
