"""Ctrl+C and SIGTERM land only where they are safe: in a reply or at the prompt, never mid-bookkeeping."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

_live = True  # until `install`, both signals act at once (Python's Ctrl+C, the CLI's SIGTERM exit)
_pressed = False  # Ctrl+C while bookkeeping (writing the transcript, printing the meter)
_terminated = False  # SIGTERM while bookkeeping
_installed = False  # a terminal chat began
_pressed_starting = False  # Ctrl+C while importing and loading
_leaving = False  # Ctrl+D during a reply (the terminal sends it as SIGQUIT then, see ui.replying): stop and leave


def install() -> None:
    """From now on a signal that arrives outside `stoppable()` waits until the next one is entered."""
    global _live, _installed
    _live, _installed = False, True
    signal.signal(signal.SIGINT, _on_interrupt)
    signal.signal(signal.SIGTERM, _on_terminate)
    if hasattr(signal, "SIGQUIT"):
        signal.signal(signal.SIGQUIT, _on_leave)


def leaving() -> bool:
    """Whether Ctrl+D was pressed during a reply: the chat ends after it stopped."""
    return _leaving


def discard_typeahead() -> None:
    """Leaving a terminal chat: lines typed during a reply and never read are meant for the chat, not for the shell
    that reads the terminal next (after a kill they ran there). One-shot runs keep the shell's type-ahead."""
    if not _installed:
        return  # no terminal chat was started
    try:
        import termios

        if sys.stdin.isatty():
            termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)
    except (ImportError, OSError, ValueError):
        pass


def on_interrupt_while_starting(signum=None, frame=None):
    """Ctrl+C before the chat begins: remembered, then Python's KeyboardInterrupt. Libraries that are being
    imported when it lands can turn it into an error of their own (a half-imported numpy, transformers' "could
    not import module"); `interrupted_while_starting` lets the CLI still say "interrupted" then."""
    global _pressed_starting
    _pressed_starting = True
    raise KeyboardInterrupt


def interrupted_while_starting() -> bool:
    return _pressed_starting


def on_terminate(signum=None, frame=None):
    """SIGTERM: every completed turn is already on disk; leave like Ctrl+D does."""
    raise SystemExit(143)


def _on_interrupt(signum, frame) -> None:
    global _pressed
    if _live:
        raise KeyboardInterrupt
    _pressed = True


def _on_leave(signum, frame) -> None:
    """Ctrl+D during a reply: the reply stops as for Ctrl+C, then the chat ends as Ctrl+D at the prompt ends it."""
    global _leaving
    _leaving = True
    _on_interrupt(signum, frame)


def _on_terminate(signum, frame) -> None:
    global _terminated
    if _live:
        on_terminate()
    _terminated = True


@contextlib.contextmanager
def stoppable(carry: bool) -> Iterator[None]:
    """Signals act inside this block. `carry`: a Ctrl+C pressed just before counts here (Enter, then
    Ctrl+C before the first token stops that reply); otherwise it is forgotten (it came after a reply ended)."""
    global _live, _pressed
    if _terminated:
        on_terminate()
    pressed, _pressed = _pressed, False
    if pressed and carry:
        raise KeyboardInterrupt
    before, _live = _live, True
    try:
        yield
    finally:
        _live = before


@contextlib.contextmanager
def shielded(act: bool = True) -> Iterator[None]:
    """Drawing on the screen: a Ctrl+C (or SIGTERM) waits until the drawing is done, so the terminal never
    holds half a redraw. Then, inside `stoppable()`, it acts (the reply stops), or with `act` False it is
    forgotten (it landed while a finished reply was drawn for the last time)."""
    global _live, _pressed
    before, _live = _live, False
    try:
        yield
    finally:
        _live = before
    if before and _terminated:
        on_terminate()
    pressed, _pressed = _pressed, _pressed and not before
    if before and pressed and act:
        raise KeyboardInterrupt
