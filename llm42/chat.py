"""The chat: read a message or a command, fit the dialog to the window, stream the reply, keep the record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .commands import SETTINGS, Command, help_text, parse
from .conversation import Dialog, Role
from .engine import Engine
from .i18n import Say
from .remote import RemoteError
from .settings import SamplingSettings, UsageError, check_sampling
from .signals import install as install_signals
from .signals import stoppable
from .stream import Response
from .template import ContextError
from .transcript import Transcript, TranscriptError, export_markdown, find, load
from .ui import UI, safe


@dataclass
class Reply:
    text: str
    stats: Response | None  # None when interrupted before the stats came
    dropped: int
    interrupted: bool


def answer(engine: Engine, dialog: Dialog, s: SamplingSettings, ui: UI, debug: bool = False,
           say: Say | None = None) -> Reply:
    """Stream a reply to the dialog's last user message and append it to the dialog.

    Ctrl+C stops the reply; the partial text is kept, marked as interrupted."""
    say = say or Say()
    stream, dropped = engine.reply(dialog, s, debug)
    if dropped:
        ui.warn(say("dropped", n=dropped, window=engine.window))
    parts: list[str] = []
    stats = None
    interrupted = False
    try:
        with stoppable(carry=True), ui.reply_stream() as view:
            for r in stream:
                if r.finish_reason:
                    stats = r
                    break
                if r.text:
                    parts.append(r.text)
                    view.add(safe(r.text))
                if debug and r.top:
                    ui.debug_step(engine.tokenizer.decode([r.token]), r.top)
    except KeyboardInterrupt:
        interrupted = True
        stream.close()  # a remote stream closes its connection here
        ui.warn(say("stopped"))
    if stats is not None and stats.finish_reason == "connection lost":
        interrupted = True
    text = "".join(parts).strip()
    dialog.add(Role.ASSISTANT, text, interrupted=interrupted)
    return Reply(text, stats, dropped, interrupted)


def debug_report(r: Response, device: str) -> dict:
    return {
        "prompt_tokens": r.prompt_tokens, "reused_prompt_tokens": r.reused_tokens,
        "completion_tokens": r.generation_tokens, "finish_reason": r.finish_reason, "device": device,
        "ttft_s": round(r.ttft, 4), "decode_tokens_per_s": round(r.decode_tps, 2),
        "peak_memory_gb": round(r.peak_memory_gb, 3),
    }


class Chat:
    """A conversation in progress: its dialog, settings and transcript, and the verbs that change them."""

    def __init__(self, engine: Engine, dialog: Dialog, sampling: SamplingSettings, ui: UI, say: Say, *,
                 transcript: Transcript | None = None, history: Path | None = None, model_name: str = "",
                 device: str = "cpu", debug: bool = False, status: bool = True, verbose: bool = False,
                 lang: str = "en"):
        self.engine, self.dialog, self.sampling, self.ui, self.say = engine, dialog, sampling, ui, say
        self.transcript, self.history, self.model_name, self.device = transcript, history, model_name, device
        self.debug, self.status, self.verbose, self.lang = debug, status, verbose, lang
        self.one_shot = False
        self.last: Reply | None = None
        self.regens = 0
        self.started = transcript is not None and transcript.path.is_file()

    # the loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Read until the end of input; 0 on a clean exit. Ctrl+C quits only when pressed twice at the prompt,
        so one meant for a reply that had just ended does not close the chat."""
        if self.ui.interactive:
            install_signals()
        armed = False
        while True:
            try:
                text = self.ui.read()
            except KeyboardInterrupt:
                if armed:
                    return 0
                armed = True
                self.ui.info(self.say("again_to_quit"))
                continue
            armed = False
            if text is None or not self.handle(text):
                return 0

    def handle(self, text: str) -> bool:
        """Act on one line of input; False means leave."""
        item = parse(text)
        if isinstance(item, Command):
            if item.name == "/exit":
                return False
            if not item.known:
                self.ui.warn(self.say("unknown", cmd=item.name))
                return True
            getattr(self, "do_" + item.name[1:])(item.arg)
            return True
        if item.strip():
            self.send(item)
        return True

    def send(self, text: str) -> Reply | None:
        self.dialog.add(Role.USER, text)
        self.log_message(Role.USER, text)
        return self.respond()

    def respond(self, sampling: SamplingSettings | None = None) -> Reply | None:
        """Answer the last user message; a message that cannot fit is taken back with a warning."""
        try:
            reply = answer(self.engine, self.dialog, sampling or self.sampling, self.ui, self.debug, self.say)
        except (ContextError, RemoteError) as e:
            self.dialog.messages.pop()
            self.log("truncate", keep=len(self.dialog.messages))
            if self.one_shot:
                raise  # one message and nothing else to do: an error at the CLI's edge
            self.ui.warn(self.say("not_sent", why=e))
            return None
        stats = reply.stats
        self.log_message(Role.ASSISTANT, reply.text, interrupted=reply.interrupted,
                         finish_reason="interrupted" if reply.interrupted else stats and stats.finish_reason,
                         stats=debug_report(stats, self.device) if stats else None)
        self.last = reply
        if self.debug and stats:
            self.ui.debug_summary(debug_report(stats, self.device))
        if self.status and stats:
            used = stats.prompt_tokens + stats.generation_tokens
            line = (self.say("context", used=used, window=self.engine.window) if self.engine.window
                    else self.say("context_remote", used=used))
            if reply.dropped:
                line += self.say("context_dropped", n=reply.dropped)
            if self.verbose:
                line += self.say("timing", ttft=stats.ttft, tps=stats.decode_tps)
            self.ui.info(line)
        return reply

    # the record -------------------------------------------------------------------------------
    def settings_dict(self) -> dict:
        return {**asdict(self.sampling), "markdown": self.ui.markdown, "status": self.status}

    def log(self, event: str, **data) -> None:
        if self.transcript is None:
            return
        if not self.started:
            self.started = True
            self.transcript.start(self.model_name, replace(self.dialog, messages=[]), self.settings_dict())
        self.transcript.write(event, **data)

    def log_message(self, role: Role, content: str, **extra) -> None:
        self.log(role.value, content=content, **{k: v for k, v in extra.items() if v not in (None, False)})

    def _truncate(self, keep: int) -> None:
        del self.dialog.messages[keep:]
        self.log("truncate", keep=keep)

    def _last_user(self) -> int | None:
        return next((i for i in range(len(self.dialog.messages) - 1, -1, -1)
                     if self.dialog.messages[i].role is Role.USER), None)

    # the commands -----------------------------------------------------------------------------
    def do_help(self, arg: str) -> None:
        self.ui.show(help_text(self.lang))

    def do_reset(self, arg: str) -> None:
        self.dialog.messages.clear()
        self.last = None
        if self.transcript is not None:  # a new conversation gets a new file
            self.transcript = Transcript.create(self.transcript.path.parent, self.transcript.warn)
            self.started = False
        self.ui.info(self.say("reset"))

    def do_undo(self, arg: str) -> None:
        i = self._last_user()
        if i is None:
            self.ui.warn(self.say("nothing_undo"))
            return
        self._truncate(i)
        self.ui.info(self.say("undone"))

    def do_regen(self, arg: str) -> None:
        if not self.dialog.messages or self.dialog.messages[-1].role is not Role.ASSISTANT:
            self.ui.warn(self.say("nothing_regen"))
            return
        self._truncate(len(self.dialog.messages) - 1)
        self.regens += 1
        seed = None if self.sampling.seed is None else self.sampling.seed + self.regens  # a new draw
        self.respond(replace(self.sampling, seed=seed))

    def do_edit(self, arg: str) -> None:
        i = self._last_user()
        if i is None:
            self.ui.warn(self.say("nothing_edit"))
            return
        try:
            text = arg or self.ui.read(default=self.dialog.messages[i].content, hint=self.say("edit_hint"))
        except KeyboardInterrupt:  # Ctrl+C cancels the edit
            return
        if not text or not text.strip():
            return
        self._truncate(i)
        self.send(text)

    def do_system(self, arg: str) -> None:
        if not arg:
            text = self.dialog.system
            self.ui.show(self.say("system_now", text=text) if text is not None else self.say("system_default"))
            return
        self.dialog.system = arg
        self.log("system", content=arg)
        self.ui.info(self.say("system_set"))

    def do_set(self, arg: str) -> None:
        if not arg:
            self.ui.show("\n".join(f"  {k} = {v}" for k, v in self.settings_dict().items()))
            return
        name, _, value = arg.partition(" ")
        name, value = name.strip().replace("-", "_"), value.strip()
        if name not in SETTINGS or not value:
            self.ui.warn(self.say("set_usage", names=", ".join(SETTINGS)))
            return
        try:
            if name in ("markdown", "status"):
                flag = _on_off(value)
                if name == "markdown":
                    self.ui.set_markdown(flag)
                else:
                    self.status = flag
            else:
                typed = None if name == "seed" and value.lower() == "none" else _typed(name, value)
                candidate = replace(self.sampling, **{name: typed})
                check_sampling(candidate)
                if name == "max_new_tokens" and self.engine.window and typed >= self.engine.window:
                    raise UsageError(f"max new tokens must be below the {self.engine.window}-token window")
                self.sampling = candidate
        except (UsageError, ValueError) as e:
            self.ui.warn(str(e))
            return
        self.log("settings", settings=self.settings_dict())
        self.ui.info(self.say("set_done", name=name, value=value))

    def do_save(self, arg: str) -> None:
        if not arg and self.transcript is not None and self.started:
            self.ui.info(self.say("save_where", path=self.transcript.path))
            return
        if arg:
            path = Path(arg).expanduser()
        else:
            path = Transcript.create(self.history or Path.cwd()).path
        if path.is_file():
            path.unlink()  # a snapshot replaces what was saved there before
        snapshot = Transcript(path, self.ui.warn)
        snapshot.start(self.model_name, self.dialog, self.settings_dict())
        if not snapshot.failed:
            self.ui.info(self.say("saved", path=path))

    def do_load(self, arg: str) -> None:
        if not arg:
            self.ui.warn(self.say("need_arg", cmd="/load", what="ID|path"))
            return
        try:
            path = find(arg, self.history or Path.cwd())
            loaded = load(path)
        except TranscriptError as e:
            self.ui.warn(str(e))
            return
        self.dialog.system, self.dialog.messages = loaded.dialog.system, loaded.dialog.messages
        self.last = None
        if self.transcript is not None:  # the loaded conversation goes on in its own file
            self.transcript = Transcript(path, self.transcript.warn)
            self.started = True
            if loaded.dropped_unanswered:
                self.transcript.write("truncate", keep=len(self.dialog.messages))
        self.ui.info(self.say("loaded", n=len(self.dialog.messages), path=path))
        if loaded.skipped:
            self.ui.info(self.say("skipped", n=loaded.skipped))

    def do_export(self, arg: str) -> None:
        if not arg:
            self.ui.warn(self.say("need_arg", cmd="/export", what="path.md"))
            return
        path = Path(arg).expanduser()
        try:
            path.write_text(export_markdown(self.dialog, self.model_name), encoding="utf-8")
        except OSError as e:
            self.ui.warn(f"cannot write {path}: {e.strerror or e}")
            return
        self.ui.info(self.say("exported", path=path))

    def do_stats(self, arg: str) -> None:
        if self.last is None or self.last.stats is None:
            self.ui.warn(self.say("no_stats"))
            return
        r = self.last.stats
        used = r.prompt_tokens + r.generation_tokens
        self.ui.show(f"  prompt tokens      {r.prompt_tokens} ({r.reused_tokens} from the cache)\n"
                     f"  reply tokens       {r.generation_tokens} ({r.finish_reason})\n"
                     f"  time to first      {r.ttft:.2f} s\n"
                     f"  decode speed       {r.decode_tps:.1f} tokens/s\n"
                     f"  context            {used}" + (f" / {self.engine.window}" if self.engine.window else "") + " tokens")

    def do_history(self, arg: str) -> None:
        if not self.dialog.messages:
            self.ui.show(self.say("history_empty"))
            return
        for m in self.dialog.messages:
            who = ">>> " if m.role is Role.USER else ""
            self.ui.show(who + m.content + (" [stopped]" if m.interrupted else ""))


def _on_off(value: str) -> bool:
    v = value.lower()
    if v in ("on", "true", "1", "yes"):
        return True
    if v in ("off", "false", "0", "no"):
        return False
    raise UsageError(f"expected on or off, got {value!r}")


def _typed(name: str, value: str):
    kind = int if name in ("top_k", "max_new_tokens", "seed") else float
    try:
        return kind(value)
    except ValueError:
        raise UsageError(f"{name} must be {'a whole number' if kind is int else 'a number'}, got {value!r}") from None
