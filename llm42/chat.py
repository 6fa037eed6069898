"""The chat loop: read a message, fit the dialog to the window, stream the reply, keep history."""

from __future__ import annotations

from dataclasses import dataclass, field

from .conversation import Dialog, Role
from .generate import PromptCache
from .kernels import Kernels
from .settings import SamplingSettings
from .stream import Response, stream_reply
from .template import ChatFormat, ContextError, fit
from .ui import UI, safe


@dataclass
class Engine:
    """A loaded model with what generation needs to talk to it."""

    model: object
    tokenizer: object
    fmt: ChatFormat
    window: int
    stop_ids: set[int]
    kernels: Kernels | None = None
    cache: PromptCache = field(init=False)

    def __post_init__(self) -> None:
        self.cache = PromptCache(self.model, self.window, self.kernels)


@dataclass
class Reply:
    text: str
    stats: Response | None  # None when interrupted before the stats came
    dropped: int
    interrupted: bool


def answer(engine: Engine, dialog: Dialog, s: SamplingSettings, ui: UI, debug: bool = False) -> Reply:
    """Stream a reply to the dialog's last user message and append it to the dialog.

    Ctrl+C stops the reply; the partial text is kept, marked as interrupted."""
    fitted = fit(engine.fmt, dialog, s.max_new_tokens, engine.window)
    if fitted.dropped:
        ui.warn(f"[{fitted.dropped} oldest turn(s) left out to fit the {engine.window}-token context]")
    parts: list[str] = []
    stats = None
    interrupted = False
    try:
        with ui.reply_stream() as view:
            for r in stream_reply(engine.cache, engine.tokenizer, fitted.ids, s, engine.stop_ids,
                                  engine.fmt.stop_strings, debug):
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
        ui.interrupted()
    text = "".join(parts).strip()
    dialog.add(Role.ASSISTANT, text, interrupted=interrupted)
    return Reply(text, stats, fitted.dropped, interrupted)


def chat_loop(engine: Engine, dialog: Dialog, s: SamplingSettings, ui: UI, debug: bool = False,
              device: str = "cpu") -> int:
    """Read messages until the end of input; 0 on a clean exit."""
    while True:
        text = ui.read()
        if text is None or text.strip() in ("/exit", "/quit"):
            return 0
        if not text.strip():
            continue
        dialog.add(Role.USER, text)
        try:
            reply = answer(engine, dialog, s, ui, debug)
        except ContextError as e:
            dialog.messages.pop()
            ui.warn(f"message not sent: {e}")
            continue
        if debug and reply.stats:
            ui.debug_summary(debug_report(reply.stats, device))


def debug_report(r: Response, device: str) -> dict:
    return {
        "prompt_tokens": r.prompt_tokens, "reused_prompt_tokens": r.reused_tokens,
        "completion_tokens": r.generation_tokens, "finish_reason": r.finish_reason, "device": device,
        "ttft_s": round(r.ttft, 4), "decode_tokens_per_s": round(r.decode_tps, 2),
        "peak_memory_gb": round(r.peak_memory_gb, 3),
    }
