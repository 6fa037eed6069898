"""Replies on the terminal as they stream: Markdown (finished blocks printed once, only the open one redrawn)
or plain text, and model text made safe to print."""

from __future__ import annotations

import re
import time

from rich.console import Console, Group
from rich.live import Live
from rich.markdown import ListItem, Markdown
from rich.segment import Segment
from rich.text import Text

from .signals import shielded

# C0 controls and DEL, except tab and newline: model output must never drive the terminal
_UNSAFE = {c: None for c in [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F]}


def safe(text: str) -> str:
    """`text` without the control characters that could drive a terminal: every view of a reply and every line of
    command output (ui.show) that carries model or file text passes through here."""
    return text.translate(_UNSAFE)


class NumberedItem(ListItem):
    """A list item whose number keeps its dot ("1. Banana"), as the model wrote it."""

    def render_number(self, console, options, number: int, last_number: int):
        width = len(str(last_number)) + 2  # "1. " for lists of up to nine
        lines = console.render_lines(self.elements, options.update(width=options.max_width - width), style=self.style)
        lines = lines or [[]]  # an item with nothing after its number yet (a reply stopped at "1."): the number
        style = console.get_style("markdown.item.number", default="none")
        for i, line in enumerate(lines):
            yield Segment(f"{number}.".rjust(width - 1) + " " if i == 0 else " " * width, style)
            yield from line
            yield Segment("\n")

    def render_bullet(self, console, options):
        bullet = console.get_style("markdown.item.bullet", default="none")
        return list(super().render_bullet(console, options)) or [Segment(" • ", bullet), Segment("\n")]  # as above


_LIST = re.compile(r"\s*([-*+]|\d+[.)])\s")
_OPENS = (":", "{", "(", "[", ",", "=", "\\", "->", "=>")  # a line after which code goes on indented


def fence_code(markup: str) -> str:
    """Code the model wrote without a fence (`def f(s):`, then an indented `return ...`) as a code block: as a
    paragraph, Markdown strips the indentation of its later lines, and the code copied off the screen breaks. A
    paragraph is code here where an indented line follows one that opens a block or goes on (`:`, `{`, `(`, `,`)."""
    out: list[str] = []
    block: list[str] = []  # the open paragraph
    fence = None  # inside a fence the model wrote: its mark
    for line in markup.split("\n"):
        mark = line.lstrip()[:3]
        if fence is not None:  # the model's own code block (still open while it streams): as it is
            out.append(line)
            fence = None if line.strip() == fence else fence
        elif mark in ("```", "~~~") or not line.strip():  # the paragraph ends
            out += _fenced(block)
            out.append(line)
            block, fence = [], mark if mark in ("```", "~~~") else None
        else:
            block.append(line)
    return "\n".join(out + _fenced(block))


def _fenced(block: list[str]) -> list[str]:
    return ["```", *block, "```"] if _code_like(block) else block


def _code_like(lines: list[str]) -> bool:
    if len(lines) < 2 or _LIST.match(lines[0]) or lines[0].lstrip().startswith((">", "|", "#")):
        return False
    return any(b[:1] in (" ", "\t") and a.rstrip().endswith(_OPENS) for a, b in zip(lines, lines[1:]))


class ChatMarkdown(Markdown):
    """Markdown as a chat model means it: a single line break is a line break (a poem keeps its lines), and code
    written without a fence keeps its indentation."""

    elements = {**Markdown.elements, "list_item_open": NumberedItem}

    def __init__(self, markup: str, **kw):
        super().__init__(fence_code(markup), **kw)
        stack = list(self.parsed)
        while stack:
            token = stack.pop()
            if token.type == "softbreak":
                token.type = "hardbreak"
            stack.extend(token.children or [])

    def __rich_console__(self, console, options):
        started = False  # rich begins a list with an empty line; a block here never starts with one
        for segment in super().__rich_console__(console, options):
            started = started or segment.text != "\n"
            if started:
                yield segment


class MarkdownStream:
    """Streams Markdown: finished blocks are printed once, only the open block is re-rendered.

    A block ends at a blank line outside a code fence, or where a fence closes, so the cost
    of a refresh depends on the open block, never on the length of the reply."""

    def __init__(self, console: Console):
        self.console = console
        self.block = ""  # complete lines of the open block
        self.partial = ""  # the line being written
        self.fence: str | None = None
        self.printed = False
        self.shown = 0.0  # when the open block was last redrawn
        # no refresh thread: every redraw happens here, between tokens, shielded from Ctrl+C
        self.live = Live(console=console, auto_refresh=False, vertical_overflow="visible", transient=False)

    def __enter__(self) -> MarkdownStream:
        with shielded():
            self.live.start()
        return self

    def __exit__(self, *exc) -> None:
        with shielded(act=False):
            self.live.update(self._open(), refresh=True)
            self.live.stop()

    def _commit(self, text: str) -> None:
        if text.strip():
            if self.printed:
                self.live.console.print()
            self.live.console.print(ChatMarkdown(text))
            self.printed = True

    def add(self, text: str) -> None:
        text = safe(text)  # what the model wrote never drives the terminal
        with shielded():
            *lines, self.partial = (self.partial + text).split("\n")
            for line in lines:
                self._line(line)
            if self.block.count("\n") > max(self.console.height - 4, 8):
                self._split_tall_block()
            now = time.monotonic()
            if now - self.shown >= 1 / 12 or lines:  # at most 12 redraws a second, and at each new line
                self.shown = now
                self.live.update(self._open(), refresh=True)

    def _open(self):
        text = self.block + self.partial
        if not text.strip():
            return Text("")
        return Group(Text(""), ChatMarkdown(text)) if self.printed else ChatMarkdown(text)

    def _line(self, line: str) -> None:
        mark = line.lstrip()[:3]
        if self.fence is None and mark in ("```", "~~~"):
            self._commit(self.block)
            self.block, self.fence = line + "\n", line.lstrip()
        elif self.fence is not None and mark == self.fence[:3] and line.strip() == mark:
            self._commit(self.block + line + "\n")
            self.block, self.fence = "", None
        elif self.fence is None and not line.strip():
            self._commit(self.block)
            self.block = ""
        else:
            self.block += line + "\n"

    def _split_tall_block(self) -> None:
        """A block taller than the screen is printed now (a code block is closed and reopened)."""
        if self.fence is not None:
            self._commit(self.block + self.fence[:3] + "\n")
            self.block = self.fence + "\n"
        else:
            self._commit(self.block)
            self.block = ""


class PlainStream:
    def __init__(self, out):
        self.out = out

    def __enter__(self) -> PlainStream:
        return self

    def __exit__(self, *exc) -> None:
        with shielded(act=False):
            self.out.write("\n")
            self.out.flush()

    def add(self, text: str) -> None:
        text = safe(text)  # what the model wrote never drives the terminal
        with shielded():
            self.out.write(text)
            self.out.flush()
