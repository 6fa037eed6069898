"""Transcripts: every conversation appended as it happens to a JSON Lines file that survives a crash.

One event per line: start, user, assistant (with finish reason and stats), system, settings, truncate
(undo/regen/edit/reset keep the first N messages). Each line is flushed and fsynced when written, so a
kill at any moment leaves a file whose complete lines hold every completed turn; a torn last line is skipped."""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from .conversation import Dialog, Role

VERSION = 1


def history_dir(override: str | None = None) -> Path:
    """--history-dir, else $LLM42_HISTORY_DIR, else the platform's user data folder."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("LLM42_HISTORY_DIR"):
        return Path(os.environ["LLM42_HISTORY_DIR"]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("llm42", appauthor=False)) / "conversations"


class TranscriptError(OSError):
    """A transcript could not be found or read."""


@dataclass
class Loaded:
    dialog: Dialog
    settings: dict = field(default_factory=dict)
    skipped: int = 0  # lines that could not be read (a torn last line after a crash)
    dropped_unanswered: bool = False


class Transcript:
    """Appends events to one file. Write failures warn once (through `warn`) and the chat goes on."""

    def __init__(self, path: Path, warn=lambda message: None):
        self.path = Path(path)
        self.warn = warn
        self.failed = False

    @classmethod
    def create(cls, folder: Path, warn=lambda message: None) -> "Transcript":
        name = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2) + ".jsonl"
        return cls(Path(folder) / name, warn)

    @property
    def id(self) -> str:
        return self.path.stem

    def write(self, event: str, **data) -> bool:
        try:
            append_line(self.path, json.dumps({"event": event, "time": round(time.time(), 3), **data}, ensure_ascii=False))
        except OSError as e:
            if not self.failed:
                self.warn(f"{self.path}: {e.strerror or e}")
            self.failed = True
            return False
        self.failed = False
        return True

    def start(self, model: str, dialog: Dialog, settings: dict) -> None:
        self.write("start", version=VERSION, model=model, system=dialog.system, settings=settings)
        for m in dialog.messages:  # a conversation continued from elsewhere starts with its history
            self.message(m.role, m.content, interrupted=m.interrupted)

    def message(self, role: Role, content: str, **extra) -> None:
        self.write(role.value, content=content, **{k: v for k, v in extra.items() if v not in (None, False)})


def append_line(path: Path, line: str) -> None:
    """Append one line and sync it to disk; after a torn last line (a crash mid-write), start a new line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(line.encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())


def load(path: Path) -> Loaded:
    """Replay a transcript into a dialog; unreadable lines are skipped and counted."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise TranscriptError(f"cannot read {path}: {e.strerror or e}") from None
    out = Loaded(Dialog())
    for line in lines:
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
            kind = ev["event"]
        except (ValueError, KeyError, TypeError):
            out.skipped += 1
            continue
        msgs = out.dialog.messages
        if kind == "start":
            out.dialog.system = ev.get("system")
            out.settings = ev.get("settings") or {}
        elif kind in ("user", "assistant"):
            out.dialog.add(Role(kind), str(ev.get("content", "")), bool(ev.get("interrupted")))
        elif kind == "system":
            out.dialog.system = ev.get("content")
        elif kind == "settings":
            out.settings.update(ev.get("settings") or {})
        elif kind == "truncate":
            del msgs[int(ev.get("keep", len(msgs))):]
    if out.dialog.messages and out.dialog.messages[-1].role is Role.USER:
        out.dialog.messages.pop()  # asked but never answered (killed mid-reply): not a completed turn
        out.dropped_unanswered = True
    return out


def find(ref: str | None, folder: Path) -> Path:
    """A transcript by path, by id in the history folder, or the most recent one (ref None)."""
    if ref:
        p = Path(ref).expanduser()
        if p.is_file():
            return p
        q = folder / (ref if ref.endswith(".jsonl") else ref + ".jsonl")
        if q.is_file():
            return q
        raise TranscriptError(f"no conversation {ref!r} (neither a file nor an id in {folder})")
    files = sorted(folder.glob("*.jsonl"), key=lambda f: f.stat().st_mtime) if folder.is_dir() else []
    if not files:
        raise TranscriptError(f"no saved conversation to resume in {folder}")
    return files[-1]


def export_markdown(dialog: Dialog, model: str) -> str:
    parts = [f"# Conversation with {model}\n"]
    if dialog.system:
        parts.append(f"> System: {dialog.system.strip()}\n")
    for m in dialog.messages:
        who = "You" if m.role is Role.USER else "Assistant"
        note = " *(stopped)*" if m.interrupted else ""
        parts.append(f"## {who}{note}\n\n{m.content}\n")
    return "\n".join(parts)
