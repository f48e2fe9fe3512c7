"""``chatctl chat``: the interactive full-screen client (see ``chatctl.chat.app``).

Modules, one job each: ``commands`` (what a typed line means), ``transcript`` (what is
shown), ``render`` (how it looks: colours, wrapping, the status bar), ``screen`` (the
scrolling discussion pane), ``connection`` (the control socket from asyncio), ``app``
(the screen, the keys and the tasks that tie them together).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path


def main(path: Path, timeout: float, last: int) -> int:
    """Run the client on the node at ``path``; its exit code. Raises ``ControlError``
    when the node cannot be reached at the start."""
    # Imported here: other chatctl commands do not pay for prompt_toolkit.
    from chatctl.chat.app import run
    from chatctl.chat.connection import Control

    code, lines = asyncio.run(run(Control(path, timeout), last))
    for line in lines:
        print(f"chatctl: {line}", file=sys.stderr)
    return code
