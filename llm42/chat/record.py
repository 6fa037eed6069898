"""The conversation's record on disk: begun at its first event, a new file after /reset, the loaded one after
/load or --resume (the unanswered last message of a killed session is truncated away there, once)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..conversation import Dialog
from ..i18n import t
from ..paths import kv_kept
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
    """The saved conversations, newest first: id, when, replies, the KV kept on disk for it (where any chat has
    some), first message."""
    rows, listed = [], [s for s in summaries(folder) if s.turns or s.first.strip()]  # a chat left before a word: none
    kept = kv_kept() if listed else {}
    sizes = [kept.get(str(s.path.resolve()), 0) for s in listed]
    width = 12 if any(sizes) else 0  # "  KV 582 MB" where a chat keeps KV, nothing where none does
    room = max(20, shutil.get_terminal_size((120, 24)).columns - 56 - width)  # one line each, at any terminal width
    for s, size in zip(listed, sizes):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.active))  # the order is by last activity too
        first = " ".join(s.first.split())
        first = first[: room - 1] + "…" if len(first) > room else first
        mode = "" if s.mode == "chat" else f" ({s.mode})"
        kv = (f"KV {_size(size)}" if size else "").rjust(width - 2) + "  " if width else ""
        rows.append(f"  {s.id}  {when}  {t('turns', n=s.turns):>10}  {kv}{first}{mode}")
    return "\n".join(rows)


def _size(n: int) -> str:
    mb = n / 2**20
    return f"{mb / 1024:.1f} GB" if mb >= 1000 else f"{mb:.0f} MB" if mb >= 10 else f"{mb:.1f} MB"
