"""The commands of README.md's "Running a node" block, as an operator would type them.

The multi-host tests run these and nothing else to start a discussion, with only the
placeholders filled in (DIRECTOR, THIS-HOST, the node's name), so a README change that
breaks them for several hosts fails the tests.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Running a node"
EXAMPLE_NAME = "alice"  # the name the README's chatd line uses


@dataclass(frozen=True)
class ReadmeCommands:
    secret: str  # a shell line, run in the directory the others run in
    director: list[str]
    node: list[str]
    send: list[str]
    tail: list[str]

    def node_for(self, director: str, this_host: str, name: str) -> list[str]:
        """The chatd line for one host: DIRECTOR, THIS-HOST and the name filled in."""
        argv = [
            word.replace("DIRECTOR", director).replace("THIS-HOST", this_host) for word in self.node
        ]
        argv[argv.index("--name") + 1] = name
        return argv


def block() -> str:
    """The first sh code block of the section, continuation lines joined."""
    text = README.read_text()
    assert f"\n{SECTION}\n" in text, f"README.md has no {SECTION!r} section"
    section = text.split(f"\n{SECTION}\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, f"README.md's {SECTION!r} has no sh code block"
    return found[1].replace("\\\n", " ")


def readme_commands() -> ReadmeCommands:
    """The five commands; fails naming what is missing if the block no longer has them."""
    shell: list[str] = []
    programs: dict[str, list[list[str]]] = {}
    for line in block().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        if words[0] in ("chat-director", "chatd", "chatctl"):
            programs.setdefault(words[0], []).append(words)
        else:
            shell.append(line.strip())
    assert len(shell) == 1 and "secret" in shell[0], f"the secret line: {shell}"
    (director,) = programs.get("chat-director", [[]])
    (node,) = programs.get("chatd", [[]])
    assert director, "no chat-director command"
    assert node and "--name" in node, "no chatd command with --name"
    assert any("DIRECTOR" in w for w in node) and any("THIS-HOST" in w for w in node), node
    assert node[node.index("--name") + 1] == EXAMPLE_NAME, node
    sends = [c for c in programs.get("chatctl", []) if c[1:2] == ["send"]]
    tails = [c for c in programs.get("chatctl", []) if c[1:2] == ["tail"]]
    assert len(sends) == 1 and len(tails) == 1, programs.get("chatctl")
    return ReadmeCommands(shell[0], director, node, sends[0], tails[0])
