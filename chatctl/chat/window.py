"""The client's window: the discussion above, a status bar, the input line below; its keys
and its style. What goes in each part comes from ``chatctl.chat.app``."""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.layout.processors import BeforeInput
from prompt_toolkit.styles import Style

from chatctl.chat.screen import TranscriptControl

STYLE = Style.from_dict(
    {
        "status": "reverse",
        "time": "ansibrightblack",
        "notice": "ansibrightblack",
        "info": "",
        "error": "ansired bold",
        "pending": "ansibrightblack italic",
        "action": "italic",
        "prompt": "bold",
    }
)


def layout(
    screen: TranscriptControl,
    buffer: Buffer,
    status_bar: Callable[[], StyleAndTextTuples],
    prompt: Callable[[], StyleAndTextTuples],
) -> Layout:
    """The discussion (``screen``), a one-line status bar, and the input line (``buffer``,
    up to five lines high, after ``prompt``), focused."""
    bar = Window(FormattedTextControl(status_bar), height=1, style="class:status")
    typing = Window(
        BufferControl(buffer, input_processors=[BeforeInput(prompt, style="class:prompt")]),
        height=Dimension(min=1, max=5),
        wrap_lines=True,
        dont_extend_height=True,
    )
    discussion = Window(screen, wrap_lines=False)
    return Layout(HSplit([discussion, bar, typing]), focused_element=typing)


def key_bindings(
    buffer: Buffer,
    screen: TranscriptControl,
    interrupt: Callable[[], None],
    end_of_input: Callable[[], None],
) -> KeyBindings:
    """Ctrl-C (or SIGINT) ``interrupt``; Ctrl-D on an empty line is ``end_of_input``;
    PageUp/PageDown scroll the discussion; Ctrl-L redraws."""
    keys = KeyBindings()
    empty = Condition(lambda: not buffer.text)

    @keys.add("c-c")
    @keys.add("<sigint>")
    def on_interrupt(event: KeyPressEvent) -> None:
        interrupt()

    @keys.add("c-d", filter=empty)
    def on_end_of_input(event: KeyPressEvent) -> None:
        end_of_input()

    @keys.add("pageup")
    def page_up(event: KeyPressEvent) -> None:
        screen.page_up()

    @keys.add("pagedown")
    def page_down(event: KeyPressEvent) -> None:
        screen.page_down()

    @keys.add("c-l")
    def redraw(event: KeyPressEvent) -> None:
        event.app.renderer.clear()

    return keys
