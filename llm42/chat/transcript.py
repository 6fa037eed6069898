"""Transcripts: every conversation appended as it happens to a JSON Lines file that survives a crash.

One event per line: start, user, assistant (with finish reason and stats), system, settings, truncate
(undo/regen/edit/reset keep the first N messages). Each line is flushed and fsynced when written, so a
kill at any moment leaves a file whose complete lines hold every completed turn; a torn last line is skipped."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..conversation import Dialog, Role
from ..errors import Llm42Error
from ..i18n import t
from .files import typed

VERSION = 1


class TranscriptError(Llm42Error):
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
    def create(cls, folder: Path, warn=lambda message: None) -> Transcript:
        name = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2) + ".jsonl"
        return cls(Path(folder) / name, warn)

    def write(self, event: str, **data) -> bool:
        try:
            append_line(
                self.path, json.dumps({"event": event, "time": round(time.time(), 3), **data}, ensure_ascii=False)
            )
        except OSError as e:
            if not self.failed:
                self.warn(f"{self.path}: {e.strerror or e}")
            self.failed = True
            return False
        self.failed = False
        return True

    def start(
        self, model: str, dialog: Dialog, settings: dict, mode: str = "chat", endpoint: str | None = None
    ) -> None:
        """`mode`: "chat", "piped" or "one-shot" (a bare --resume takes the latest chat); `endpoint`: the server's
        URL for a remote model. A conversation continued from elsewhere starts with its history, system changes
        where they were made."""
        where = {"endpoint": endpoint} if endpoint else {}
        for i, (kind, item) in enumerate(dialog.timeline()):
            if i == 0:
                self.write("start", version=VERSION, model=model, mode=mode, system=item, settings=settings, **where)
            elif kind == "system":
                self.write("system", content=item)
            else:
                self.message(item.role, item.content, interrupted=item.interrupted, ids=item.ids)

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
        raise TranscriptError(t("cannot_read", path=path, why=e.strerror or e)) from None
    out = Loaded(Dialog())
    for line in lines:
        if not line.strip():
            continue
        try:
            _replay(out, json.loads(line))
        except (ValueError, KeyError, TypeError):  # not what llm42 writes: skipped and counted, never a traceback
            out.skipped += 1
    if out.dialog.messages and out.dialog.messages[-1].role is Role.USER:
        out.dialog.messages.pop()  # asked but never answered (killed mid-reply): not a completed turn
        out.dropped_unanswered = True
    return out


def _replay(out: Loaded, ev: dict) -> None:
    """One event into the dialog, every field's type checked first (TypeError when it is not what llm42 writes).
    Events of kinds this version does not know are passed over (a later version's)."""
    kind = ev["event"]
    optional_text = lambda v: v is None or isinstance(v, str)
    if kind == "start":
        if not optional_text(ev.get("system")) or not isinstance(ev.get("settings") or {}, dict):
            raise TypeError(kind)
        out.dialog.system = ev.get("system")
        out.settings = ev.get("settings") or {}
    elif kind in ("user", "assistant"):
        if not isinstance(ev.get("content", ""), str):
            raise TypeError(kind)
        ids = ev.get("ids")  # a reply's generated tokens; anything else there is not used
        ids = ids if isinstance(ids, list) and all(type(i) is int and i >= 0 for i in ids) else None
        out.dialog.add(Role(kind), ev.get("content", ""), ev.get("interrupted") is True, ids)
    elif kind == "system":
        if not optional_text(ev.get("content")):
            raise TypeError(kind)
        out.dialog.set_system(ev.get("content"))
    elif kind == "settings":
        if not isinstance(ev.get("settings") or {}, dict):
            raise TypeError(kind)
        out.settings.update(ev.get("settings") or {})
    elif kind == "truncate":
        keep = ev.get("keep")
        if type(keep) is not int or keep < 0:
            raise TypeError(kind)
        del out.dialog.messages[keep:]


def find(ref: str | None, folder: Path) -> Path:
    """A transcript by path, by id in the history folder, or the most recent chat (ref None; one-shot runs skipped)."""
    if ref:
        p = Path(ref).expanduser()
        q = folder / (ref if ref.endswith(".jsonl") else ref + ".jsonl")
        found = p if p.is_file() else q if q.is_file() else None
        if found is None:
            raise TranscriptError(t("no_conversation", ref=ref, folder=folder))
        if first_event(found).get("event") != "start":  # never read into, nor appended to, another kind of file
            raise TranscriptError(t("not_conversation", path=found))
        return found
    elsewhere = _last_elsewhere(folder)
    files = sorted([*newest_first(folder), *elsewhere], key=lambda f: f.stat().st_mtime, reverse=True)
    chats = [f for f in files if first_event(f).get("mode", "chat") == "chat"]
    if not chats:
        raise TranscriptError(t("nothing_to_resume", folder=folder))
    return chats[0]


LAST = ".last"  # in the history folder: the chat last active when its file lies elsewhere (continued with /load)


def note_active(folder: Path, path: Path) -> None:
    """A chat in a file outside the history folder is being continued: --resume should find it there."""
    try:
        if path.resolve().parent == folder.resolve() or not folder.is_dir():
            return
        tmp = folder / f"{LAST}.{os.getpid()}"
        tmp.write_text(str(path.resolve()), encoding="utf-8")
        tmp.replace(folder / LAST)
    except OSError:
        pass  # a convenience: --resume then takes the newest in the folder


def _last_elsewhere(folder: Path) -> list[Path]:
    try:
        path = Path((folder / LAST).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return []
    return [path] if path.is_absolute() and path.is_file() else []


def newest_first(folder: Path) -> list[Path]:
    files = list(folder.glob("*.jsonl")) if folder.is_dir() else []
    return sorted(files, key=lambda f: f.stat().st_mtime, reverse=True)


def first_event(path: Path) -> dict:
    """A transcript's start record (model, mode, endpoint, ...); {} for a file that does not begin with one."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            event = json.loads(f.readline())
    except (OSError, ValueError):
        return {}
    return event if isinstance(event, dict) else {}


@dataclass
class Summary:
    """One line of --list."""

    id: str
    path: Path
    mode: str
    first: str  # the first message, as the user wrote it
    turns: int  # replies in the conversation as it stands
    active: float = 0.0  # the last write, seconds since the epoch


def summaries(folder: Path) -> list[Summary]:
    """The saved conversations, newest first."""
    out = []
    for path in newest_first(folder):
        start = first_event(path)
        try:
            loaded = load(path)
        except TranscriptError:  # unreadable now (permissions, removed meanwhile): left out of the list
            continue
        message, files = typed(next((m.content for m in loaded.dialog.messages if m.role is Role.USER), ""))
        first = f"{message} [{', '.join(files)}]" if files else message  # what was typed, and the files read for it
        turns = sum(1 for m in loaded.dialog.messages if m.role is Role.ASSISTANT)
        mode = start.get("mode") if isinstance(start.get("mode"), str) else "chat"
        try:
            active = path.stat().st_mtime
        except OSError:  # removed meanwhile: when it began
            active = float(start["time"]) if type(start.get("time")) in (int, float) else 0.0
        out.append(Summary(path.stem, path, mode, first, turns, active))
    return out


BLOCK_START = re.compile(r"\s*([-*+>#|]|\d+[.)]\s|```|~~~)")


def hard_breaks(text: str) -> str:
    """Line breaks kept as the screen showed them: a Markdown viewer joins single newlines into one paragraph (a
    haiku became one line), so a line followed by more of its paragraph ends in two spaces (a hard break). Code
    blocks, and lines before a list item, heading, quote or table, stay as they are."""
    lines, fenced = text.split("\n"), False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        after = lines[i + 1] if i + 1 < len(lines) else ""
        if not fenced and line.strip() and after.strip() and not BLOCK_START.match(after) and not line.endswith("  "):
            lines[i] = line + "  "
    return "\n".join(lines)


def export_markdown(dialog: Dialog, model: str) -> str:
    """The conversation as Markdown; a system prompt changed mid-chat shows where it changed."""
    parts = [f"# Conversation with {model}\n"]
    for i, (kind, item) in enumerate(dialog.timeline()):
        if kind == "message":
            who = "You" if item.role is Role.USER else "Assistant"
            parts.append(f"## {who}{' *(stopped)*' if item.interrupted else ''}\n\n{hard_breaks(item.content)}\n")
        elif i == 0:
            parts += [f"> System: {item.strip()}\n"] if item else []
        else:
            parts.append(
                f"> System prompt changed to: {item.strip()}\n"
                if item
                else "> System prompt back to the model's default\n"
            )
    return "\n".join(parts)
