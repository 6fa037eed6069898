"""In-chat slash commands: what the user typed, parsed into a command or a message, and what each does."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from .conversation import Role
from .errors import UsageError
from .i18n import language, t
from .settings import SAMPLING_NAMES, parse_number
from .transcript import Transcript, TranscriptError, export_markdown, summaries

HELP = {  # name: (argument, English, Korean)
    "/help": ("", "list the commands", "명령 목록"),
    "/exit": ("", "leave (also Ctrl+D)", "종료 (Ctrl+D 도 같음)"),
    "/reset": ("", "start a new conversation (a system prompt you set stays)", "새 대화 시작 (설정한 시스템 프롬프트는 유지)"),
    "/undo": ("", "remove the last exchange", "마지막 대화 지우기"),
    "/regen": ("", "regenerate the last reply", "마지막 답변 다시 생성"),
    "/edit": ("[text]", "edit your last message (or replace it by text) and regenerate",
              "마지막 메시지를 고쳐 (또는 text 로 바꿔) 다시 생성"),
    "/system": ("[text]", "show or change the system prompt", "시스템 프롬프트 보기/바꾸기"),
    "/set": ("[NAME VALUE]", "show or change a setting", "설정 보기/바꾸기"),
    "/save": ("[path]", "save the conversation (JSON Lines)", "대화 저장 (JSON Lines)"),
    "/load": ("ID|path", "continue a saved conversation", "저장된 대화 이어가기"),
    "/list": ("", "list the saved conversations", "저장된 대화 목록"),
    "/export": ("path.md", "write the conversation as Markdown", "대화를 Markdown 으로 내보내기"),
    "/stats": ("", "prompt tokens, TTFT, tokens/s of the last reply", "마지막 답변의 토큰 수, 첫 토큰 시간, 속도"),
    "/history": ("", "show the conversation so far", "지금까지의 대화 보기"),
}
ALIASES = {"/quit": "/exit", "/bye": "/exit", "/clear": "/reset", "/?": "/help"}
SETTINGS = (*SAMPLING_NAMES, "markdown", "status")


@dataclass
class Command:
    name: str  # canonical, e.g. "/undo"; unknown ones keep what was typed
    arg: str
    known: bool


def parse(text: str) -> Command | str:
    """A Command for '/name args', else the message to send ('//x' sends '/x'; a leading space sends as is)."""
    if text.startswith("//"):
        return text[1:]
    if not text.startswith("/"):
        return text
    name, _, arg = text.partition(" ")
    name = ALIASES.get(name.lower(), name.lower())
    return Command(name, arg.strip(), name in HELP)


def help_text() -> str:
    col = 2 if language() == "ko" else 1
    width = max(len(f"{n} {a}") for n, (a, *_) in HELP.items())
    return "\n".join(f"  {(n + ' ' + spec[0]).strip():<{width}}  {spec[col]}" for n, spec in HELP.items())


class Commands:
    """The verbs of the slash commands, for Chat (which has the dialog, settings, record and backend they change)."""

    def do_help(self, arg: str) -> None:
        self.ui.show(help_text())

    def do_reset(self, arg: str) -> None:
        self.dialog.messages.clear()
        self.dialog.changes.clear()
        self.last = None
        self.record.new()
        self.ui.info(t("reset"))

    def do_undo(self, arg: str) -> None:
        i = self._last_user()
        if i is None:
            self.ui.warn(t("nothing_undo"))
            return
        self._truncate(i)
        self.ui.info(t("undone"))

    def do_regen(self, arg: str) -> None:
        if not self.dialog.messages or self.dialog.messages[-1].role is not Role.ASSISTANT:
            self.ui.warn(t("nothing_regen"))
            return
        self._truncate(len(self.dialog.messages) - 1)
        self.regens += 1
        seed = None if self.sampling.seed is None else self.sampling.seed + self.regens  # a new draw
        self.respond(replace(self.sampling, seed=seed))

    def do_edit(self, arg: str) -> None:
        i = self._last_user()
        if i is None:
            self.ui.warn(t("nothing_edit"))
            return
        try:
            text = arg or self.ui.read(default=self.dialog.messages[i].content, hint=t("edit_hint"))
        except KeyboardInterrupt:  # Ctrl+C cancels the edit
            return
        if not text or not text.strip():
            return
        self._truncate(i)
        self.send(text)

    def do_system(self, arg: str) -> None:
        if not arg:
            text, default = self.dialog.system, self.backend.default_system()
            self.ui.show(t("system_now", text=text) if text is not None else
                         t("system_default_is", text=default) if default else t("system_default"))
            return
        self.dialog.set_system(arg)
        self.log("system", content=arg)
        self.ui.info(t("system_set"))

    def do_set(self, arg: str) -> None:
        if not arg:
            self.ui.show("\n".join(f"  {k} = {_shown(v)}" for k, v in self.settings_dict().items()))
            return
        name, _, value = arg.partition(" ")
        name, value = name.strip().replace("-", "_"), value.strip()
        if name not in SETTINGS:
            self.ui.warn(t("set_unknown", name=name, names=", ".join(SETTINGS)))
            return
        if not value:
            self.ui.warn(t("set_usage", names=", ".join(SETTINGS)))
            return
        try:
            if name in ("markdown", "status"):
                flag = _on_off(value)
                if name == "markdown":
                    self.ui.set_markdown(flag)  # stays off where there is no terminal to draw on
                else:
                    self.options.status = flag
                shown = _shown(self.settings_dict()[name])
            else:
                self.sampling = self._checked(replace(self.sampling, **{name: parse_number(name, value)}))
                shown = _shown(getattr(self.sampling, name))
        except UsageError as e:
            self.ui.warn(str(e))
            return
        self.log("settings", settings=self.settings_dict())
        self.ui.info(t("set_done", name=name, value=shown))

    def do_save(self, arg: str) -> None:
        if not arg and self.record.path is not None:
            self.ui.info(t("save_where", path=self.record.path))
            return
        path = Path(arg).expanduser() if arg else Transcript.create(self.record.folder).path
        if not self._folder_exists(path):
            return
        if path.is_file():
            path.unlink()  # a snapshot replaces what was saved there before
        snapshot = Transcript(path, self.ui.warn)
        snapshot.start(self.backend.name, self.dialog, self.settings_dict(), mode=self.record.mode)
        if not snapshot.failed:
            self.ui.info(t("saved", path=path))

    def do_load(self, arg: str) -> None:
        if not arg:
            self.ui.warn(t("need_arg", cmd="/load", what="ID|path"))
            return
        try:
            self.resume(arg, verb="loaded")
        except TranscriptError as e:
            self.ui.warn(str(e))

    def do_list(self, arg: str) -> None:
        self.ui.show(list_text(self.record.folder) or t("list_empty", folder=self.record.folder))

    def do_export(self, arg: str) -> None:
        if not arg:
            self.ui.warn(t("need_arg", cmd="/export", what="path.md"))
            return
        path = Path(arg).expanduser()
        if not self.dialog.messages:
            self.ui.warn(t("nothing_to_export"))
            return
        if not self._folder_exists(path):
            return
        if path.exists() and not self._confirmed(t("replace_file", path=path)):
            self.ui.warn(t("not_replaced", path=path))
            return
        try:
            path.write_text(export_markdown(self.dialog, self.backend.name), encoding="utf-8")
        except OSError as e:
            self.ui.warn(t("cannot_write", path=path, why=e.strerror or e))
            return
        self.ui.info(t("exported", path=path))

    def do_stats(self, arg: str) -> None:
        r = self.last.stats if self.last is not None else None
        if r is None:
            self.ui.warn(t("no_stats"))
            return
        window = self.backend.window
        self.ui.show(t("stats", prompt=r.prompt_tokens, reused=r.reused_tokens, reply=r.generation_tokens,
                       reason=t("finish_" + r.finish_reason.replace(" ", "_")), ttft=r.ttft, tps=r.decode_tps,
                       used=r.prompt_tokens + r.generation_tokens, window=f" / {window}" if window else ""))

    def do_history(self, arg: str) -> None:
        if not self.dialog.messages:
            self.ui.show(t("history_empty"))
            return
        for m in self.dialog.messages:
            text = m.content + (" " + t("stopped_mark") if m.interrupted else "")
            if m.role is Role.USER:  # every line of a message marked, as typed: never mistaken for the reply
                text = "\n".join((">>> " if i == 0 else "... ") + line for i, line in enumerate(text.split("\n")))
            self.ui.show(text)

    def _folder_exists(self, path: Path) -> bool:
        """/save and /export write into a folder that is there; they never make one (a typo would go unseen)."""
        if not path.parent.is_dir():
            self.ui.warn(t("no_parent", path=path, folder=path.parent))
        return path.parent.is_dir()

    def _confirmed(self, question: str) -> bool:
        """A yes from the person at the terminal; piped input never says yes by accident."""
        if not self.ui.interactive:
            return False
        try:
            answer = self.ui.read(hint=question)
        except KeyboardInterrupt:
            return False
        return (answer or "").strip().lower() in ("y", "yes", "예", "네")


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


def _on_off(value: str) -> bool:
    v = value.lower()
    if v in ("on", "true", "1", "yes"):
        return True
    if v in ("off", "false", "0", "no"):
        return False
    raise UsageError(t("on_off", value=value))


def _shown(value) -> str:
    """A setting as /set prints it: on/off for switches."""
    return ("on" if value else "off") if isinstance(value, bool) else str(value)
