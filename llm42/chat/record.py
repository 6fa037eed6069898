"""The conversation's record on disk: begun at its first event, a new file after /reset, the loaded one after
/load or --resume (the unanswered last message of a killed session is truncated away there, once)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..conversation import Dialog
from ..i18n import t
from .transcript import Loaded, Transcript, find, load, note_active, summaries


class Record:
    """Where the events of the conversation go. `folder` is searched for ids; `write` False is --no-history."""

    def __init__(
        self,
        folder: Path,
        model: str,
        *,
        write: bool = True,
        mode: str = "chat",
        warn=lambda m: None,
        endpoint: str | None = None,
    ):
        """`mode`: "chat" (a terminal), "piped" or "one-shot" (--prompt); a bare --resume takes the latest chat.
        `endpoint`: the server's URL where the model is remote (recorded, so --resume finds it again)."""
        self.folder, self.model, self.write, self.mode, self.warn = Path(folder), model, write, mode, warn
        self.endpoint = endpoint
        self.transcript: Transcript | None = None
        self.started = False

    @property
    def path(self) -> Path | None:
        """The file being written, once something was."""
        return self.transcript.path if self.transcript is not None and self.started else None

    def log(self, event: str, dialog: Dialog, settings: dict, /, **data) -> None:
        """Append one event; the first one begins the file with the conversation's start."""
        if not self.write:
            return
        if not self.started:
            self.transcript = self.transcript or Transcript.create(self.folder, self.warn)
            first = dialog.changes[0][1] if dialog.changes else dialog.system  # later changes are events of their own
            self.transcript.start(self.model, Dialog(system=first), settings, mode=self.mode, endpoint=self.endpoint)
            self.started = True
        self.transcript.write(event, **data)

    def new(self) -> None:
        """A new conversation (/reset) gets a new file, begun at its first event."""
        self.transcript, self.started = None, False

    def open(self, ref: str | None) -> tuple[Path, Loaded]:
        """Continue a saved conversation (an id, a path, or None for the latest chat) in its own file."""
        path = find(ref, self.folder)
        loaded = load(path)
        if self.write:
            self.transcript, self.started = Transcript(path, self.warn), True
            if self.mode == "chat":
                note_active(self.folder, path)
            if loaded.dropped_unanswered:
                self.transcript.write("truncate", keep=len(loaded.dialog.messages))
        return path, loaded


def list_text(folder: Path) -> str:
    """The saved conversations, newest first: id, when, replies, first message."""
    rows = []
    room = max(20, shutil.get_terminal_size((120, 24)).columns - 56)  # one line each, at any terminal width
    for s in summaries(folder):
        if not s.turns and not s.first.strip():
            continue  # begun and left before anything was said: nothing to resume
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.active))  # the order is by last activity too
        first = " ".join(s.first.split())
        first = first[: room - 1] + "…" if len(first) > room else first
        mode = "" if s.mode == "chat" else f" ({s.mode})"
        rows.append(f"  {s.id}  {when}  {t('turns', n=s.turns):>10}  {first}{mode}")
    return "\n".join(rows)
