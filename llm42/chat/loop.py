"""The chat: read a message or a command, stream the reply, keep the record."""

from __future__ import annotations

import time
from dataclasses import asdict, replace

from ..backend import Backend, Collector, Finish, Response
from ..conversation import Dialog, Role
from ..errors import Llm42Error, UsageError
from ..i18n import t
from ..settings import SAMPLING_NAMES, SamplingSettings, check_sampling, reply_fits
from .commands import COMMANDS, Command, parse
from .files import attach
from .record import Record
from .session import Options, Turn
from .signals import install as install_signals
from .signals import leaving, shielded, stoppable
from .ui import UI

MASHING = 1.0  # s after a reply during which Ctrl+C at the prompt neither arms nor quits (a person stopping it)


def answer(backend: Backend, dialog: Dialog, s: SamplingSettings, ui: UI, debug: bool = False) -> Turn:
    """Stream a reply to the dialog's last user message and append it to the dialog.

    Ctrl+C stops the reply; the partial text is kept, marked as interrupted."""
    stream = backend.reply(dialog, s, debug)
    c = Collector()

    def show(r: Response) -> None:
        if r.text:
            view.add(r.text)
        if debug and r.top:
            ui.debug_step(r.token_text or "", r.top)

    try:
        with stoppable(carry=True), ui.reply_stream() as view:
            for r in stream:
                with shielded():  # kept and drawn as one: a Ctrl+C lands before both or after both
                    c.add(r)
                    show(r)
            final = c.final
    except KeyboardInterrupt:
        stream.close()  # a remote stream closes its connection here
        final = c.stopped()
        ui.warn(t("stopped"))
    finally:
        if debug:
            ui.debug_flush()
    interrupted = final is None or final.finish_reason in (Finish.INTERRUPTED, Finish.LOST)
    if final is not None and final.finish_reason == Finish.LOST:
        ui.warn(t("connection_lost", why=final.error or ""))
    elif final is not None and final.finish_reason == Finish.LENGTH:
        ui.warn(t("cut" if ui.interactive else "cut_flag", n=final.generation_tokens))  # a flag where no /set is
    dialog.add(Role.ASSISTANT, c.text, interrupted, None if interrupted else final.ids)
    return Turn(c.text, final, interrupted)


def debug_report(r: Response, device: str) -> dict:
    return {
        "prompt_tokens": r.prompt_tokens,
        "reused_prompt_tokens": r.reused_tokens,
        "restored_prompt_tokens": r.restored_tokens,
        "dropped_turns": r.dropped_turns,
        "completion_tokens": r.generation_tokens,
        "finish_reason": r.finish_reason,
        "device": device,
        "ttft_s": round(r.ttft, 4),
        "decode_tokens_per_s": round(r.decode_tps, 2),
        "peak_memory_gb": round(r.peak_memory_gb, 3),
    }


class Chat:
    """A conversation in progress: its dialog, settings and record; the slash commands (commands.py) change them."""

    def __init__(
        self,
        backend: Backend,
        ui: UI,
        record: Record,
        sampling: SamplingSettings,
        dialog: Dialog | None = None,
        options: Options | None = None,
    ):
        self.backend, self.ui, self.record, self.sampling = backend, ui, record, sampling
        self.dialog = dialog or Dialog()
        self.options = options or Options()
        self.last: Turn | None = None
        self.regens = 0
        self.attached: list[tuple[str, str]] = []  # files read (/read, --file) for the next message

    # the loop ---------------------------------------------------------------------------------
    def run(self) -> int:
        """Read until the end of input; 0 on a clean exit. Ctrl+C quits only when pressed twice at the prompt,
        so one meant for a reply that had just ended does not close the chat."""
        if self.ui.interactive:
            install_signals()
        armed, busy_until = False, 0.0
        while True:
            try:
                text = self.ui.read(carry=time.monotonic() >= busy_until)  # a press between prompts still counts
            except KeyboardInterrupt:
                if time.monotonic() < busy_until:
                    continue  # the tail of presses that stopped a reply: "stop", not "quit"
                if armed:
                    self.leave()
                    return 0
                armed = True
                self.ui.info(t("again_to_quit"))
                continue
            armed = False
            if text is None or not self.handle(text) or leaving():
                self.leave()
                return 0
            busy_until = time.monotonic() + MASHING

    def leave(self) -> None:
        """At the end of a terminal chat: where the conversation is kept and how to come back to it, one line."""
        path = self.record.path
        if not self.ui.interactive or path is None or not self.dialog.messages:
            return
        ref = path.stem if path.parent.resolve() == self.record.folder.resolve() else str(path)
        self.ui.info(t("kept", path=path, ref=ref))

    def ask_once(self, text: str) -> int:
        """One message and its reply (--prompt); errors end the run at the CLI's edge. The exit status."""
        text, self.attached = attach(self.attached, text), []
        self.dialog.add(Role.USER, text)
        self.log_message(Role.USER, text)
        reply = self.respond(fatal=True)
        return 130 if reply.interrupted else 0

    def handle(self, text: str) -> bool:
        """Act on one line of input; False means leave."""
        item = parse(text)
        if isinstance(item, Command):
            if item.name == "/exit":
                return False
            if not item.known:
                self.ui.warn(t("unknown", cmd=item.name))
                return True
            COMMANDS[item.name].run(self, item.arg)
            return True
        if item.strip():
            self.send(item)
        return True

    def send(self, text: str) -> Turn | None:
        """Send a message (with the files read for it, which then go) and answer it."""
        text, self.attached = attach(self.attached, text), []
        self.dialog.add(Role.USER, text)
        self.log_message(Role.USER, text)
        return self.respond()

    def respond(self, sampling: SamplingSettings | None = None, fatal: bool = False) -> Turn | None:
        """Answer the last user message; one that cannot be sent is taken back with a warning (or raised if `fatal`)."""
        self.backend.keep_for(self.record.path)
        try:
            reply = answer(self.backend, self.dialog, sampling or self.sampling, self.ui, self.options.debug)
        except Llm42Error as e:  # too long for the window, or the server refused
            self.dialog.cut(len(self.dialog.messages) - 1)
            self.log("truncate", keep=len(self.dialog.messages))
            if fatal:
                raise
            self.ui.warn(t("not_sent", why=e))
            return None
        stats = reply.stats
        report = debug_report(stats, self.backend.device) if stats else None
        self.log_message(
            Role.ASSISTANT,
            reply.text,
            interrupted=reply.interrupted,
            finish_reason=stats.finish_reason if stats else Finish.INTERRUPTED,
            stats=report,
            ids=self.dialog.messages[-1].ids,  # the next run's prompt feeds them as this one would
        )
        self.last = reply
        if self.options.debug and report:
            self.ui.debug_summary(report)
        if stats and stats.dropped_turns > self.dialog.left_out:  # said when more go, not at every turn after
            self.ui.warn(t("dropped", n=stats.dropped_turns, window=self.backend.window))
        if stats:  # the next prompt leaves them out too, while they stay as they are (Dialog.cut)
            self.dialog.left_out = stats.dropped_turns
        if self.options.status and stats:
            self.ui.info(self.meter(stats))
        return reply

    def meter(self, r: Response) -> str:
        used = r.prompt_tokens + r.generation_tokens
        window = self.backend.window
        line = t("context", used=used, window=window) if window else t("context_remote", used=used)
        if r.dropped_turns:
            line += t("context_dropped", n=r.dropped_turns)
        if self.options.verbose:
            line += t("timing", ttft=r.ttft, tps=r.decode_tps)
            if r.drafted:
                line += t("timing_spec", drafted=r.drafted, accepted=r.accepted)
        return line

    # the record -------------------------------------------------------------------------------
    def settings_dict(self) -> dict:
        switches = {"markdown": self.ui.markdown, "status": self.options.status}
        speculate = "auto" if self.backend.speculate else "off"  # as --speculate names it
        return {**asdict(self.sampling), **switches, "speculate": speculate}

    def log(self, event: str, **data) -> None:
        self.record.log(event, self.dialog, self.settings_dict(), **data)

    def log_message(self, role: Role, content: str, **extra) -> None:
        self.log(role.value, content=content, **{k: v for k, v in extra.items() if v not in (None, False)})

    def resume(self, ref: str | None, verb: str = "resumed") -> None:
        """Continue a saved conversation (--resume, /load): its messages, system prompt and sampling settings
        (those given as flags stay as given)."""
        path, loaded = self.record.open(ref)
        self.dialog, self.last = loaded.dialog, None
        saved = {k: v for k, v in loaded.settings.items() if k in SAMPLING_NAMES and k not in self.options.pinned}
        try:
            self.sampling = self.checked(replace(self.sampling, **saved))
        except (UsageError, TypeError):
            pass  # a hand-edited file: keep the current settings
        self.backend.ready(self.dialog)  # the KV kept for it is read while the recap is shown and a message typed
        self.ui.info(t(verb, n=len(self.dialog.messages), path=path))
        for m in self.dialog.messages[-2:]:  # where the user is: the last exchange, shortened
            self.ui.info(f"  {t('you') if m.role is Role.USER else t('bot')}: {_short(m.content)}")
        if loaded.dropped_unanswered:
            self.ui.info(t("unanswered"))
        if loaded.skipped:
            self.ui.info(t("skipped", n=loaded.skipped))

    def truncate(self, keep: int) -> None:
        self.dialog.cut(keep)
        self.log("truncate", keep=keep)

    def last_user(self) -> int | None:
        return next(
            (i for i in range(len(self.dialog.messages) - 1, -1, -1) if self.dialog.messages[i].role is Role.USER), None
        )

    def checked(self, s: SamplingSettings) -> SamplingSettings:
        check_sampling(s)
        if not reply_fits(s.max_new_tokens, self.backend.window):
            raise UsageError(t("max_new_below", window=self.backend.window))
        return s


def _short(text: str, room: int = 72) -> str:
    line = " ".join(text.split())
    return line if len(line) <= room else line[: room - 1] + "…"
