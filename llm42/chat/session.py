"""What a slash command may use of the chat: a declared interface (chat.Chat is one), so commands never reach
into the chat's private parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..backend import Backend, Response
from ..conversation import Dialog
from ..settings import SamplingSettings

if TYPE_CHECKING:
    from .record import Record
    from .ui import UI


@dataclass
class Turn:
    """A reply as it ended: its text, its figures (None if stopped before the first token) and why."""

    text: str
    stats: Response | None
    interrupted: bool  # stopped by Ctrl+C or a lost connection: kept, marked


@dataclass
class Options:
    """How much the chat shows besides the replies, and which sampling settings the user fixed by flag."""

    debug: bool = False
    status: bool = True  # the context meter after each reply
    verbose: bool = False  # time to first token and tokens/s in the meter
    pinned: set[str] = field(default_factory=set)  # sampling flags a resumed conversation's settings do not override


class Session(Protocol):
    """What a command may use of the chat (loop.Chat is one)."""

    ui: UI
    dialog: Dialog
    record: Record
    backend: Backend
    sampling: SamplingSettings
    options: Options
    last: Turn | None
    regens: int
    attached: list[tuple[str, str]]  # files read for the next message: (name, text)

    def send(self, text: str) -> Turn | None: ...
    def respond(self, sampling: SamplingSettings | None = None) -> Turn | None: ...
    def resume(self, ref: str | None, verb: str = "resumed") -> None: ...
    def log(self, event: str, **data) -> None: ...
    def settings_dict(self) -> dict: ...
    def truncate(self, keep: int) -> None: ...
    def last_user(self) -> int | None: ...
    def checked(self, s: SamplingSettings) -> SamplingSettings: ...
