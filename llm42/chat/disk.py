"""The slash commands that read or write files: /save, /load, /list, /export, /read."""

from __future__ import annotations

from pathlib import Path

from ..i18n import t
from .files import FileError, attach, read_text
from .record import list_text
from .session import Session
from .transcript import Transcript, TranscriptError, export_markdown


def save_(chat: Session, arg: str) -> None:
    if not arg and chat.record.path is not None:
        chat.ui.info(t("save_where", path=chat.record.path))
        return
    path = Path(arg).expanduser() if arg else Transcript.create(chat.record.folder).path
    if not _folder_exists(chat, path):
        return
    if path.is_file():
        path.unlink()  # a snapshot replaces what was saved there before
    snapshot = Transcript(path, chat.ui.warn)
    snapshot.start(chat.backend.name, chat.dialog, chat.settings_dict(), mode=chat.record.mode)
    if not snapshot.failed:
        chat.ui.info(t("saved", path=path))


def load_(chat: Session, arg: str) -> None:
    if not arg:
        chat.ui.warn(t("need_arg", cmd="/load", what="ID|path"))
        return
    try:
        chat.resume(arg, verb="loaded")
    except TranscriptError as e:
        chat.ui.warn(str(e))


def list_(chat: Session, arg: str) -> None:
    chat.ui.show(list_text(chat.record.folder) or t("list_empty", folder=chat.record.folder))


def export_(chat: Session, arg: str) -> None:
    if not arg:
        chat.ui.warn(t("need_arg", cmd="/export", what="path.md"))
        return
    path = Path(arg).expanduser()
    if not chat.dialog.messages:
        chat.ui.warn(t("nothing_to_export"))
        return
    if not _folder_exists(chat, path):
        return
    if path.exists() and not _confirmed(chat, t("replace_file", path=path)):
        chat.ui.warn(t("not_replaced", path=path))
        return
    try:
        path.write_text(export_markdown(chat.dialog, chat.backend.name), encoding="utf-8")
    except OSError as e:
        chat.ui.warn(t("cannot_write", path=path, why=e.strerror or e))
        return
    chat.ui.info(t("exported", path=path))


def read_(chat: Session, arg: str) -> None:
    if not arg:
        names = ", ".join(name for name, _ in chat.attached)
        chat.ui.show(t("read_pending", names=names) if names else t("need_arg", cmd="/read", what="PATH"))
        return
    try:
        name, text = read_text(arg)
    except FileError as e:
        chat.ui.warn(str(e))
        return
    if (name, text) in chat.attached:
        chat.ui.info(t("read_again", name=name))
        return
    window, count = chat.backend.window, chat.backend.count_tokens
    total = count(attach([*chat.attached, (name, text)], ""))
    if total is not None and window and total > window - chat.sampling.max_new_tokens - 16:
        chat.ui.warn(t("read_too_long", name=name, n=total, window=window, max_new=chat.sampling.max_new_tokens))
        return
    chat.attached.append((name, text))
    tokens = t("read_tokens", n=count(attach([(name, text)], ""))) if total is not None else ""  # this file's own
    chat.ui.info(t("read_done", name=name, chars=len(text), tokens=tokens))
    if len(chat.attached) > 1:
        k = len(chat.attached)
        chat.ui.info(t("read_total", k=k, n=total) if total is not None else t("read_total_files", k=k))


def _folder_exists(chat: Session, path: Path) -> bool:
    """/save and /export write into a folder that is there; they never make one (a typo would go unseen)."""
    if not path.parent.is_dir():
        chat.ui.warn(t("no_parent", path=path, folder=path.parent))
    return path.parent.is_dir()


def _confirmed(chat: Session, question: str) -> bool:
    """A yes from the person at the terminal; piped input never says yes by accident."""
    if not chat.ui.interactive:
        return False
    try:
        answer = chat.ui.read(hint=question)
    except KeyboardInterrupt:
        return False
    return (answer or "").strip().lower() in ("y", "yes", "예", "네")
