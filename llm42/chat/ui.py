"""Terminal UI: reading messages, streaming replies (Markdown or plain), status lines."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.text import Text

from .render import MarkdownStream, PlainStream, safe
from .signals import stoppable


@contextlib.contextmanager
def replying() -> Iterator[None]:
    """While a reply streams in a terminal: typed keys not echoed, and Ctrl+D sent as SIGQUIT (the chat's handler
    stops the reply and leaves; signals.py), since no one reads the terminal then to see its end of input.
    Both back as they were afterwards."""
    try:
        import termios

        fd = sys.stdin.fileno()
        before = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError):  # not a terminal, or not a POSIX one
        yield
        return
    except Exception:  # termios.error: stdin is not a terminal
        yield
        return
    quiet = list(before)
    quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
    quiet[6] = list(before[6])
    if quiet[6][termios.VEOF] not in (0, b"\x00"):
        quiet[6][termios.VQUIT] = quiet[6][termios.VEOF]  # the key that ends input, as a signal
        quiet[6][termios.VEOF] = b"\x00"  # and no longer as the end of input
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, before)


class UI:
    """Everything the user sees and types. Replies go to stdout, the rest to stderr."""

    def __init__(self, markdown: bool = True, interactive: bool | None = None):
        self.interactive = sys.stdin.isatty() and sys.stdout.isatty() if interactive is None else interactive
        self.out = Console(highlight=False, soft_wrap=False)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.markdown = markdown and self.out.is_terminal and not self.out.is_dumb_terminal  # a pipe gets plain text
        self._session = None
        self._debug_lines: list[Text] = []
        self.conversations = lambda: []  # ids that Tab offers after /load (the CLI sets it to its history folder's)

    # status -----------------------------------------------------------
    def info(self, text: str) -> None:
        self.err.print(Text(text, style="dim"))

    def warn(self, text: str) -> None:
        self.err.print(Text(text, style="yellow"))

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[None]:
        if self.err.is_terminal:
            with self.err.status(text, spinner="dots"):
                yield
        else:
            yield

    def show(self, text: str) -> None:
        """Output of a command the user asked for (stderr: stdout carries replies only); on a terminal,
        long lines wrap between words."""
        self.err.print(Text(safe(text)), soft_wrap=not self.err.is_terminal)

    def set_markdown(self, on: bool) -> None:
        self.markdown = on and self.out.is_terminal and not self.out.is_dumb_terminal

    def banner(self, model: str, keys: str) -> None:
        if self.interactive:
            self.err.print(Text.assemble(("llm42", "bold"), f" · {model}\n", (keys, "dim")))

    # input ------------------------------------------------------------
    def read(self, default: str = "", hint: str | None = None, carry: bool = False) -> str | None:
        """The next message, or None at the end (Ctrl+D, EOF). Ctrl+C on an empty line raises KeyboardInterrupt;
        with `carry` so does one pressed since the last prompt, before this one took the keys (else it is forgotten)."""
        if not self.interactive:
            line = sys.stdin.readline()
            return None if line == "" else line.rstrip("\n")
        if hint:
            self.info(hint)
        with stoppable(carry=carry):
            try:
                if self.out.is_dumb_terminal:  # TERM=dumb: the terminal's own line editing, no escape codes
                    return input(">>> ")
                if self._session is None:
                    self._session = _prompt_session(lambda: self.conversations())
                return self._session.prompt(default=default)
            except EOFError:
                return None

    # replies ----------------------------------------------------------
    @contextlib.contextmanager
    def reply_stream(self) -> Iterator[MarkdownStream | PlainStream]:
        """Where a reply is drawn as it streams. In a terminal, keys typed meanwhile are not echoed: the
        terminal's "^C" would move the cursor behind the live view's back, which then erased the wrong
        lines. They still reach the next prompt; Ctrl+D stops the reply and ends the chat."""
        with replying() if self.interactive else contextlib.nullcontext():
            with MarkdownStream(self.out) if self.markdown else PlainStream(sys.stdout) as view:
                yield view

    def debug_step(self, chosen: str, top: list[tuple[str, float]]) -> None:
        """One token's top-5 candidates (byte pieces shown as \\xNN) and the one drawn. Where the reply and these
        lines share one screen they wait until the reply is drawn (interleaved, neither was readable)."""
        cands = "  ".join(f"{_quoted(t)} {p:.3f}" for t, p in top)
        line = Text(f"[debug] {cands}  -> {_quoted(chosen)}", style="dim")
        if self.out.is_terminal and self.err.is_terminal:
            self._debug_lines.append(line)
        else:
            self.err.print(line)

    def debug_flush(self) -> None:
        """The candidate lines kept back during a reply, below it."""
        for line in self._debug_lines:
            self.err.print(line)
        self._debug_lines.clear()

    def debug_summary(self, data: dict) -> None:
        self.err.print_json(json.dumps(data))


def _quoted(piece: str) -> str:
    """A token's text in quotes with its control characters visible; a byte piece's \\xNN is shown as it is."""
    return "'" + piece.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + "'"


def _prompt_session(conversations=lambda: []):
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document
    from prompt_toolkit.history import InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings

    from .commands import COMMANDS, SETTINGS, describe

    paths = PathCompleter(expanduser=True)

    class Commands(Completer):
        """Tab completes a command name at the start of the line, then its argument: a setting's name after /set,
        a conversation's id (or a path) after /load, a path after /save and /export."""

        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            if text.startswith("/") and " " not in text:
                for name in COMMANDS:
                    if name.startswith(text):
                        yield Completion(name, start_position=-len(text), display_meta=describe(name))
                return
            command, _, arg = text.partition(" ")
            if " " in arg.strip() and command != "/set":
                return
            if command == "/set" and " " not in arg:
                yield from (Completion(n, start_position=-len(arg)) for n in SETTINGS if n.startswith(arg))
            elif command == "/load":
                yield from (Completion(i, start_position=-len(arg)) for i in conversations() if i.startswith(arg))
            if command in ("/load", "/save", "/export", "/read"):
                yield from paths.get_completions(Document(arg, len(arg)), complete_event)

    keys = KeyBindings()

    @keys.add("escape", "enter")
    def _(event):  # Esc then Enter: a new line instead of sending
        event.current_buffer.insert_text("\n")

    @keys.add("c-c")
    def _(event):  # Ctrl+C clears a typed line; on an empty one the chat asks for a second to quit
        buf = event.current_buffer
        if buf.text:
            buf.reset()
        else:
            event.app.exit(exception=KeyboardInterrupt())

    return PromptSession(
        message=">>> ",
        history=InMemoryHistory(),
        key_bindings=keys,
        completer=Commands(),
        complete_while_typing=False,
        prompt_continuation="... ",
        multiline=False,
    )
