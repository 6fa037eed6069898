"""What a slash command may use of the chat: a declared interface (chat.Chat is one), so commands never reach
into the chat's private parts."""

from __future__ import annotations

from typing import Protocol

from .conversation import Dialog
from .settings import SamplingSettings


class Session(Protocol):
    """What a command may use of the chat (chat.Chat is one)."""

    ui: object  # ui.UI
    dialog: Dialog
    record: object  # record.Record
    backend: object  # backend.Backend
    sampling: SamplingSettings
    options: object  # chat.Options
    last: object  # chat.Turn | None
    regens: int
    attached: list[tuple[str, str]]  # files read for the next message: (name, text)

    def send(self, text: str) -> object: ...
    def respond(self, sampling: SamplingSettings | None = None) -> object: ...
    def resume(self, ref: str | None, verb: str = "resumed") -> None: ...
    def log(self, event: str, **data) -> None: ...
    def settings_dict(self) -> dict: ...
    def truncate(self, keep: int) -> None: ...
    def last_user(self) -> int | None: ...
    def checked(self, s: SamplingSettings) -> SamplingSettings: ...
