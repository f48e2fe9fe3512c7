"""chatd's exit statuses, and the error that ends it with one of them.

A failure an operator must act on ends the process with one line on stderr and a status
of its own, so that a service manager or a script can tell them apart (README: exit codes).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # the control socket cannot be made, or a bug
EXIT_USAGE = 2  # a bad option, secret file, certificate or address
EXIT_LISTEN = 3  # the peer port cannot be listened on
EXIT_SECRET_REFUSED = 4  # the director refuses this node's group secret at start-up
EXIT_CLOCK_SKEW = 5  # the director refuses this node's requests as dated outside its window


class Fatal(Exception):
    """Stop chatd with ``exit_code``; ``str()`` is the one line to print (without "chatd: ")."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def find_fatal(exc: BaseException) -> Fatal | None:
    """The ``Fatal`` that ended a run, also from inside nested exception groups (trio
    wraps what a task raises in its nursery's group); None if ``exc`` holds anything else."""
    leaves: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop()
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        else:
            leaves.append(current)
    fatal = [leaf for leaf in leaves if isinstance(leaf, Fatal)]
    # Other leaves alongside (e.g. Cancelled of sibling tasks) do not hide the cause; a
    # real error among them does: that one must surface with its traceback.
    others = [
        leaf for leaf in leaves if not isinstance(leaf, Fatal) and isinstance(leaf, Exception)
    ]
    return fatal[0] if fatal and not others else None
