"""``chatctl chat``: the interactive client. The discussion above, a status bar, an input
line below; runs on prompt_toolkit's asyncio loop.

Three tasks run beside the screen:

- the events stream (``_follow``): recent history, then each delivered message as it
  comes; when the node goes away (crash, stop) or leaves, a notice says so and the
  client keeps trying to reconnect every second, so a restarted node is picked up again
  (messages already shown are not repeated). ``/quit`` leaves at any time;
- the sender (``_send_typed``): typed texts are sent in order, one at a time. A text is
  shown as pending until the node delivers it; while the node is not ready (joining, gone)
  it waits, marked as such; a refusal that waiting cannot cure is shown as "not sent" with
  the text. Texts never accepted are listed on exit: nothing is lost silently;
- the status watcher: the node's name, role and members count for the status bar, read
  at once on a change and otherwise every ``STATUS_PERIOD`` seconds.

Errors in these tasks that are not the node's doing (bugs) end the client with a
traceback after the terminal is restored.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from contextlib import suppress
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.history import InMemoryHistory

from chat.wire import MessageView, PresenceView, Status
from chatctl.chat import commands, window
from chatctl.chat.complete import ChatCompleter
from chatctl.chat.connection import Control, Opened
from chatctl.chat.render import title
from chatctl.chat.screen import TranscriptControl
from chatctl.chat.transcript import Pending, Said, Tone, Transcript
from chatctl.client import ControlError, NoDaemon, RemoteError
from chatctl.render import presence_text, status_lines, visible, who_lines

# How often the status bar is refreshed when nothing happens (a request to the node).
STATUS_PERIOD = 2.0
# How often a client whose node went away tries to reconnect.
RECONNECT_PERIOD = 1.0
# How soon a text refused for a reason that passes (not ready, rate limit) is retried.
RETRY_PERIOD = 1.0
# At most this many redraws a second, however fast messages arrive (slow terminals).
MIN_REDRAW_INTERVAL = 0.05

EXIT_OK = 0
EXIT_INTERRUPTED = 130


class Link(Enum):
    CONNECTED = "connected"
    AWAY = "node went away, waiting for it"
    LEFT = "node left, waiting for it"
    REFUSED = "events refused, retrying"
    LEAVING = "leaving"


# Refusals that waiting can cure: the text stays pending and is retried.
_TRANSIENT = {"not-ready": "waiting: node not ready", "rate-limited": "waiting: rate limit"}


def now() -> str:
    return datetime.now(UTC).isoformat()


class ChatSession:
    """One run of the client against one node's control socket."""

    def __init__(self, control: Control, status: Status, last: int) -> None:
        self.control = control
        self.last = last
        self.name = status.name
        self.role: str = status.role
        self.members: int | None = len(status.members)
        self.link = Link.CONNECTED
        self.exit_note = ""
        self.confirming_leave = False
        self.leaving = False
        self.transcript = Transcript(changed=self._redraw)
        self._changed = asyncio.Event()  # the outbox or the link changed: wake the sender
        self._status_due = asyncio.Event()
        self.screen = TranscriptControl(self.transcript, lambda: self.name)
        self.member_names = [m.name for m in status.members]
        self.buffer = Buffer(
            multiline=False,
            history=InMemoryHistory(),
            completer=ChatCompleter(lambda: self.member_names),
            complete_while_typing=False,  # Tab cycles through the matches
            accept_handler=self._accept,
        )
        self.app: Application[int] = Application(
            layout=window.layout(self.screen, self.buffer, self._status_bar, self._prompt),
            key_bindings=window.key_bindings(
                self.buffer,
                self.screen,
                lambda: self.quit(
                    EXIT_INTERRUPTED, "interrupted; the node stays in the discussion"
                ),
                lambda: self.quit(EXIT_OK, ""),
            ),
            style=window.STYLE,
            full_screen=True,
            min_redraw_interval=MIN_REDRAW_INTERVAL,
        )

    # -- the screen --

    def _status_bar(self) -> StyleAndTextTuples:
        columns = self.app.output.get_size().columns
        scrolled = self.screen.scroll > 0
        unseen = self.screen.unseen()
        return list(
            title(self.name, self.role, self.members, self.link.value, columns, scrolled, unseen)
        )

    def _prompt(self) -> StyleAndTextTuples:
        if self.confirming_leave:
            return [("class:error", "leave the discussion (the node stops)? [y/N] ")]
        return [("class:prompt", "> ")]

    def _redraw(self) -> None:
        self.app.invalidate()  # coalesced: at most one redraw per MIN_REDRAW_INTERVAL

    # -- running --

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self.quit, 128 + signum, "")
        try:
            return await self.app.run_async(pre_run=self._start_tasks, set_exception_handler=False)
        finally:
            for signum in (signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)

    def _start_tasks(self) -> None:
        # Here, not before run_async: the application forgets earlier tasks when it starts.
        for task in (self._follow(), self._send_typed(), self._watch_status()):
            self._start(task)

    async def _guard(self, task: Coroutine[Any, Any, None]) -> None:
        try:
            await task
        except Exception as exc:  # a bug: show it once the terminal is restored
            if not self.app.is_done:
                self.app.exit(exception=exc)

    def quit(self, code: int, note: str) -> None:
        if not self.app.is_done:
            self.exit_note = note
            self.app.exit(result=code)

    def goodbye(self) -> list[str]:
        """What to print once the terminal is restored: why it ended, and every typed text
        the node never accepted."""
        lines = [self.exit_note] if self.exit_note else []
        for item in self.transcript.unsent():
            why = item.state.removeprefix("waiting: ")
            if item.state == "sending":  # asked, not answered: it may have gone through
                why = "no answer yet, it may have been sent"
            lines.append(f"not sent ({why}): {visible(item.text)}")
        return lines

    # -- the events stream --

    async def _follow(self) -> None:
        lost_before = False
        while True:
            link, why = Link.LEFT, "the node left the discussion"
            try:
                async for event in self.control.events(self.last):
                    if isinstance(event, Opened):
                        if lost_before:
                            self.transcript.notice("connected to the node again", at=now())
                        self._set_link(Link.CONNECTED)
                        self._status_due.set()
                    elif isinstance(event, PresenceView):
                        self.transcript.notice(presence_text(event), at=event.at)
                        self._status_due.set()  # members, roles or our name changed
                    elif isinstance(event, MessageView):
                        self._show(event)
            except RemoteError as exc:  # e.g. busy: too many followers
                link, why = Link.REFUSED, f"the node refused the events stream ({exc})"
            except ControlError as exc:
                link, why = Link.AWAY, f"the node went away ({exc})"
            if self.leaving:
                self.quit(EXIT_OK, "the node left the discussion")
                return
            if self.link is Link.CONNECTED:  # say it once, not at every retry
                lost_before = True
                self._set_link(link)
                self.transcript.notice(
                    f"{why}; waiting for it to come back (/quit closes this window)", at=now()
                )
            await asyncio.sleep(RECONNECT_PERIOD)

    def _show(self, message: MessageView) -> None:
        self.transcript.add(
            Said(
                message.id,
                message.node_id,
                message.display or message.name,
                message.timestamp,
                message.message,
            )
        )

    def _set_link(self, link: Link) -> None:
        if self.link is not link:
            self.link = link
            self._changed.set()
            self._redraw()

    def _ready(self) -> bool:
        return self.link is Link.CONNECTED and self.role in ("member", "coordinator")

    def _waiting_state(self) -> str:
        if self.link is Link.CONNECTED:
            return "sending" if self._ready() else "waiting: node not ready"
        if self.link is Link.LEAVING:
            return "waiting: node leaving"
        return "waiting: node gone"

    # -- sending --

    async def _send_typed(self) -> None:
        """Send the outbox in order, one text at a time (see the module's docstring)."""
        while True:
            self._changed.clear()
            queued = [p for p in self.transcript.pending if p.id is None]
            if not queued or not self._ready():
                for item in queued:
                    self.transcript.update(item, self._waiting_state())
                await self._wait_change(None if not queued else STATUS_PERIOD)
                continue
            await self._send_one(queued[0])

    async def _send_one(self, item: Pending) -> None:
        self.transcript.update(item, "sending")
        try:
            message = await self.control.send(item.text)
        except RemoteError as exc:
            if exc.code in _TRANSIENT:
                self.transcript.update(item, _TRANSIENT[exc.code])
                if exc.code == "not-ready":
                    self.role = "not ready"
                    self._status_due.set()
                await self._wait_change(RETRY_PERIOD)
            else:
                self.transcript.drop(item, exc.message)
        except NoDaemon:
            self.transcript.update(item, "waiting: node gone")
            await self._wait_change(RETRY_PERIOD)
        except ControlError as exc:
            # Sent, but no answer: the node may have taken it. Say so rather than retry
            # (a retry could show it twice) or claim it was lost.
            self.transcript.drop(item, f"no answer, it may have been sent: {exc}")
        else:
            self.transcript.accepted(item, message.id)

    async def _wait_change(self, within: float | None) -> None:
        with suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._changed.wait()

    # -- the status bar --

    async def _watch_status(self) -> None:
        while True:
            self._status_due.clear()
            if self.link in (Link.CONNECTED, Link.LEAVING):
                with suppress(ControlError):  # a lost node is the events stream's to tell
                    self._update(await self.control.status())
            with suppress(TimeoutError):
                async with asyncio.timeout(STATUS_PERIOD):
                    await self._status_due.wait()

    def _update(self, status: Status) -> None:
        shown = (self.name, self.role, self.members)
        self.name, self.role, self.members = status.name, status.role, len(status.members)
        self.member_names = [m.name for m in status.members]
        if (self.name, self.role, self.members) != shown:
            self._changed.set()
            self._redraw()

    # -- the input line --

    def _accept(self, buffer: Buffer) -> bool:
        """Enter: run the line (each line of a paste in turn); True keeps it in the input."""
        text = buffer.text
        self.screen.bottom()
        if self.confirming_leave:
            self.confirming_leave = False
            if text.strip().lower() in ("y", "yes"):
                self._start(self._leave())
            else:
                self.transcript.notice("not leaving", at=now())
            return False
        parsed = [commands.parse(line) for line in text.splitlines()]
        if (problem := commands.too_long(parsed)) is not None:
            self.transcript.notice(problem, Tone.ERROR)
            return True
        for command in parsed:
            self._run(command)
        return False

    def _run(self, command: commands.Command) -> None:
        match command:
            case commands.Say(text):
                self.transcript.queue(text, self._waiting_state())
                self._changed.set()
            case commands.Who():
                self._start(self._who())
            case commands.Nick(name):
                self._start(self._nick(name))
            case commands.ShowStatus():
                self._start(self._status())
            case commands.Leave():
                self.confirming_leave = True
                self.transcript.notice(
                    "/leave makes the node leave the discussion and stop; /quit only closes"
                    " this window. Type y to leave, anything else to stay.",
                    at=now(),
                )
            case commands.Quit():
                self.quit(EXIT_OK, "")
            case commands.Help():
                self.transcript.info(commands.help_lines())
            case commands.Usage(hint):
                self.transcript.notice(hint, Tone.ERROR)
            case commands.Nothing():
                pass

    def _start(self, job: Coroutine[Any, Any, None]) -> None:
        self.app.create_background_task(self._guard(job))

    async def _who(self) -> None:
        try:
            members = await self.control.who()
        except ControlError as exc:
            self.transcript.notice(f"/who failed: {exc}", Tone.ERROR)
            return
        self.transcript.info(who_lines(members))

    async def _status(self) -> None:
        try:
            status = await self.control.status()
        except ControlError as exc:
            self.transcript.notice(f"/status failed: {exc}", Tone.ERROR)
            return
        self._update(status)
        self.transcript.info(status_lines(status))

    async def _nick(self, name: str) -> None:
        try:
            await self.control.nick(name)
        except ControlError as exc:
            self.transcript.notice(f"/nick failed: {exc}", Tone.ERROR)
            return
        self._status_due.set()

    async def _leave(self) -> None:
        self.leaving = True
        try:
            await self.control.leave()
        except ControlError as exc:
            self.leaving = False
            self.transcript.notice(f"/leave failed: {exc}", Tone.ERROR)
            return
        self._set_link(Link.LEAVING)
        self.transcript.notice("leaving the discussion...", at=now())


async def run(control: Control, last: int) -> tuple[int, list[str]]:
    """Run the client until the user quits; the exit code and the lines to print after.

    The first status request is made before the screen opens, so a wrong socket path
    fails at once with chatctl's usual message and exit code (``ControlError``)."""
    session = ChatSession(control, await control.status(), last)
    code = await session.run()
    return code, session.goodbye()
