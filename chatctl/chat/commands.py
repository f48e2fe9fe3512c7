"""What a line typed into ``chatctl chat`` means: a text to send or a command.

Pure: no I/O. A line starting with ``/`` is a command, except ``//...``, which sends the
text without its first slash (so a text can start with ``/``). ``/me ACTION`` is a text
too: the convention is an ordinary message starting with ``/me `` (signed and ordered like
any other), shown by clients as ``* name ACTION``.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import frozen

from chat.wire import MAX_TEXT_BYTES

ACTION_PREFIX = "/me "


@frozen
class Say:
    """Send ``text`` as a message (``/me`` actions included, with their prefix)."""

    text: str


@frozen
class Who:
    pass


@frozen
class Nick:
    name: str


@frozen
class ShowStatus:
    pass


@frozen
class Leave:
    """Make the node leave the discussion; asks for confirmation first."""


@frozen
class Quit:
    """Close the client; the node stays in the discussion."""


@frozen
class Help:
    pass


@frozen
class Nothing:
    """A blank line: nothing to do."""


@frozen
class Usage:
    """A command used wrongly (or unknown): ``hint`` says what to type instead."""

    hint: str


Command = Say | Who | Nick | ShowStatus | Leave | Quit | Help | Nothing | Usage

# name -> (usage, summary), in the order /help lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "me": ("/me ACTION", "send an action, shown as '* you ACTION'"),
    "who": ("/who", "list the members: names, roles, links, idle times"),
    "nick": ("/nick NAME", "change this node's name (everyone sees it)"),
    "status": ("/status", "show this node's view of the discussion"),
    "leave": ("/leave", "make the NODE leave the discussion and stop (asks first)"),
    "quit": ("/quit", "close this client; the node stays in the discussion"),
    "help": ("/help", "this list"),
}

_NO_ARGUMENT: dict[str, Command] = {
    "who": Who(),
    "status": ShowStatus(),
    "leave": Leave(),
    "quit": Quit(),
    "help": Help(),
}


def parse(line: str) -> Command:
    """The meaning of one typed line (without its newline)."""
    if not line.strip():
        return Nothing()
    if line.startswith("//"):
        return Say(line[1:])
    if not line.startswith("/"):
        return Say(line)
    name, _, rest = line[1:].partition(" ")
    name = name.lower()
    argument = rest.strip()
    if name == "me":
        if not argument:
            return Usage("usage: /me ACTION (for example: /me waves)")
        return Say(ACTION_PREFIX + rest.lstrip())
    if name == "nick":
        if not argument:
            return Usage("usage: /nick NAME")
        return Nick(argument)
    if name in _NO_ARGUMENT:
        if argument:
            return Usage(f"/{name} takes no argument")
        return _NO_ARGUMENT[name]
    shown = name if len(name) <= 20 else name[:20] + "..."
    return Usage(
        f"unknown command /{shown}: /help lists the commands; "
        f"to send a text starting with '/', type it as //{shown}"
    )


def too_long(commands: Iterable[Command]) -> str | None:
    """Why the lines of one Enter cannot be sent (a text over the wire's limit), or None:
    then none of them is sent, so that a paste is not sent in part."""
    for command in commands:
        if isinstance(command, Say):
            size = len(command.text.encode("utf-8", "surrogatepass"))
            if size > MAX_TEXT_BYTES:
                return (
                    f"too long: {size} bytes, the limit is {MAX_TEXT_BYTES} (nothing sent;"
                    " the text is still in the input line)"
                )
    return None


def help_lines() -> list[str]:
    """The /help text, one line each."""
    width = max(len(usage) for usage, _ in COMMANDS.values())
    lines = ["commands:"]
    lines += [f"  {usage:<{width}}  {summary}" for usage, summary in COMMANDS.values()]
    lines += [
        f"  {'//TEXT':<{width}}  send TEXT starting with '/'",
        "keys: Enter send · Tab complete a command or name · Up/Down input history ·"
        " PageUp/PageDown scroll · Ctrl-C or Ctrl-D (empty line) quit (the node stays) ·"
        " Ctrl-L redraw",
    ]
    return lines
