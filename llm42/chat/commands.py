"""In-chat slash commands: what the user typed, parsed into a command or a message, and a table of what each
does, over the part of the chat a command may use (Session)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..conversation import Role
from ..errors import UsageError
from ..i18n import t
from ..settings import SAMPLING_NAMES, parse_number
from .disk import export_, list_, load_, read_, save_
from .session import Session


def help_(chat: Session, arg: str) -> None:
    chat.ui.show(help_text())


def reset_(chat: Session, arg: str) -> None:
    chat.dialog.cut(0)
    chat.dialog.changes.clear()
    chat.last = None
    chat.record.new()
    chat.ui.info(t("reset"))


def undo_(chat: Session, arg: str) -> None:
    i = chat.last_user()
    if i is None:
        chat.ui.warn(t("nothing_undo"))
        return
    chat.truncate(i)
    chat.ui.info(t("undone"))


def regen_(chat: Session, arg: str) -> None:
    if not chat.dialog.messages or chat.dialog.messages[-1].role is not Role.ASSISTANT:
        chat.ui.warn(t("nothing_regen"))
        return
    chat.truncate(len(chat.dialog.messages) - 1)
    chat.regens += 1
    seed = None if chat.sampling.seed is None else chat.sampling.seed + chat.regens  # a new draw
    chat.respond(replace(chat.sampling, seed=seed))


def edit_(chat: Session, arg: str) -> None:
    i = chat.last_user()
    if i is None:
        chat.ui.warn(t("nothing_edit"))
        return
    try:
        text = arg or chat.ui.read(default=chat.dialog.messages[i].content, hint=t("edit_hint"))
    except KeyboardInterrupt:  # Ctrl+C cancels the edit
        return
    if not text or not text.strip():
        return
    chat.truncate(i)
    chat.send(text)


def system_(chat: Session, arg: str) -> None:
    if not arg:
        text, default = chat.dialog.system, chat.backend.default_system()
        chat.ui.show(
            t("system_now", text=text)
            if text is not None
            else t("system_default_is", text=default)
            if default
            else t("system_default")
        )
        return
    chat.dialog.set_system(arg)
    chat.log("system", content=arg)
    chat.ui.info(t("system_set"))


def set_(chat: Session, arg: str) -> None:
    if not arg:
        chat.ui.show("\n".join(f"  {k} = {_shown(v)}" for k, v in chat.settings_dict().items()))
        return
    name, _, value = arg.partition(" ")
    name, value = name.strip().replace("-", "_"), value.strip()
    if name not in SETTINGS:
        chat.ui.warn(t("set_unknown", name=name, names=", ".join(SETTINGS)))
        return
    if not value:
        chat.ui.warn(t("set_usage", names=", ".join(SETTINGS)))
        return
    try:
        if name in SWITCHES:
            flag = _on_off("on" if name == "speculate" and value.lower() == "auto" else value)
            if name == "markdown":
                chat.ui.set_markdown(flag)  # stays off where there is no terminal to draw on
            elif name == "status":
                chat.options.status = flag
            elif flag != chat.backend.set_speculate(flag):
                chat.ui.warn(t("speculate_local"))
                return
            shown = _shown(chat.settings_dict()[name])
        else:
            chat.sampling = chat.checked(replace(chat.sampling, **{name: parse_number(name, value)}))
            shown = _shown(getattr(chat.sampling, name))
    except UsageError as e:
        chat.ui.warn(str(e))
        return
    chat.log("settings", settings=chat.settings_dict())
    chat.ui.info(t("set_done", name=name, value=shown))


def stats_(chat: Session, arg: str) -> None:
    r = chat.last.stats if chat.last is not None else None
    if r is None:
        chat.ui.warn(t("no_stats"))
        return
    window = chat.backend.window
    chat.ui.show(
        t(
            "stats",
            prompt=r.prompt_tokens,
            reused=r.reused_tokens,
            reply=r.generation_tokens,
            reason=t("finish_" + r.finish_reason.replace(" ", "_")),
            ttft=r.ttft,
            tps=r.decode_tps,
            used=r.prompt_tokens + r.generation_tokens,
            window=f" / {window}" if window else "",
        )
        + (t("stats_restored", n=r.restored_tokens) if r.restored_tokens else "")
        + (t("stats_stored", n=kept[0], mb=kept[1] / 2**20) if (kept := chat.backend.stored()) else "")
        + (t("stats_spec", drafted=r.drafted, accepted=r.accepted) if r.drafted else "")
    )


def history_(chat: Session, arg: str) -> None:
    if not chat.dialog.messages:
        chat.ui.show(t("history_empty"))
        return
    for m in chat.dialog.messages:
        text = m.content + (" " + t("stopped_mark") if m.interrupted else "")
        if m.role is Role.USER:  # every line of a message marked, as typed: never mistaken for the reply
            text = "\n".join((">>> " if i == 0 else "... ") + line for i, line in enumerate(text.split("\n")))
        chat.ui.show(text)


@dataclass(frozen=True)
class Spec:
    arg: str  # what it takes, as /help shows it
    run: Callable[[Session, str], None] | None  # None: the chat loop handles it (/exit)


COMMANDS: dict[str, Spec] = {  # in /help's order; each one's help text is i18n's "help_<name>"
    "/help": Spec("", help_),
    "/exit": Spec("", None),
    "/reset": Spec("", reset_),
    "/undo": Spec("", undo_),
    "/regen": Spec("", regen_),
    "/edit": Spec("[text]", edit_),
    "/system": Spec("[text]", system_),
    "/set": Spec("[NAME VALUE]", set_),
    "/save": Spec("[path]", save_),
    "/load": Spec("ID|path", load_),
    "/list": Spec("", list_),
    "/export": Spec("path.md", export_),
    "/stats": Spec("", stats_),
    "/read": Spec("PATH", read_),
    "/history": Spec("", history_),
}
ALIASES = {"/quit": "/exit", "/bye": "/exit", "/clear": "/reset", "/?": "/help"}
SETTINGS = (*SAMPLING_NAMES, "markdown", "status", "speculate")
SWITCHES = ("markdown", "status", "speculate")


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
    return Command(name, arg.strip(), name in COMMANDS)


def describe(name: str) -> str:
    return t("help_" + name[1:])


def help_text() -> str:
    width = max(len(f"{n} {c.arg}") for n, c in COMMANDS.items())
    return "\n".join(f"  {(n + ' ' + c.arg).strip():<{width}}  {describe(n)}" for n, c in COMMANDS.items())


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
