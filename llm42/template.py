"""Prompt format: the 42dot SFT chat template, stop strings, and fitting a dialog to the window."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .conversation import Dialog
from .errors import UsageError
from .i18n import t

TEMPLATE_42DOT = (Path(__file__).parent / "templates" / "42dot_sft.jinja").read_text(encoding="utf-8")
STOP_42DOT = ("<human>:",)


class ContextError(UsageError):
    """A message that cannot fit in the context window even alone (exit code 2 when it ends the run)."""


@dataclass
class ChatFormat:
    """How to turn a dialog into ids for one model."""

    tokenizer: object
    stop_strings: tuple[str, ...] = ()

    def encode(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def default_system(self) -> str | None:
        """The system prompt the template puts in when the dialog has none (42dot's Korean one, SmolLM2's), or
        None: what a message alone renders with, less what it renders with an empty system prompt."""
        mark = [{"role": "user", "content": "\x00"}]
        try:
            alone = self.tokenizer.apply_chat_template(mark, tokenize=False)
            empty = self.tokenizer.apply_chat_template([{"role": "system", "content": ""}, *mark], tokenize=False)
        except Exception:  # a template that refuses a system message: nothing to show
            return None
        head = len(os.path.commonprefix([alone, empty]))
        tail = len(os.path.commonprefix([alone[head:][::-1], empty[head:][::-1]]))
        extra, missing = alone[head : len(alone) - tail], empty[head : len(empty) - tail]
        return extra.strip() or None if not missing.strip() else None


def chat_format(tokenizer, model_path: str) -> ChatFormat:
    """Install the 42dot template on 42dot models and on tokenizers that have none."""
    if "42dot" in model_path.lower() or not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = TEMPLATE_42DOT
        return ChatFormat(tokenizer, STOP_42DOT)
    return ChatFormat(tokenizer)


@dataclass
class Fitted:
    ids: list[int]
    dropped: int  # oldest whole turns left out to fit


# When turns must go, enough go at once that the prompt fills at most this share of its budget. Each such
# block drop costs one prefill of what is kept; the turns after it then extend the cached prompt (a short
# prefill each) until the window is full again. Keeping half means a full prefill at most once per half a
# window of new text (llama.cpp's context shift also discards half), while the model still sees half a
# window of history: measured with tools/soak.py (README: Long chats).
KEEP = 0.5


def fit(fmt: ChatFormat, dialog: Dialog, max_new_tokens: int, window: int, start: int = 0) -> Fitted:
    """The prompt for the dialog's last message: all of it if prompt + max_new_tokens fits the window, else
    without its oldest whole turns.

    `start` turns were left out for the previous reply: they stay out while the rest fits, so this prompt
    begins as the cached one did and only the new turn is prefilled. When it no longer fits, turns go in one
    block until the prompt fills at most KEEP of its budget. The system prompt and the newest turn are always
    kept; if they alone do not fit, ContextError."""
    budget = window - max_new_tokens
    cache: dict[int, list[int]] = {}

    def ids(drop: int) -> list[int]:
        if drop not in cache:
            cache[drop] = fmt.encode(dialog.render(drop))
        return cache[drop]

    last = max(len(dialog.turns()) - 1, 0)
    start = min(start, last)
    if len(ids(start)) <= budget:
        return Fitted(ids(start), start)
    if len(ids(last)) > budget:
        raise ContextError(t("too_long", n=len(ids(last)), window=window, max_new=max_new_tokens))
    limit = budget * KEEP if len(ids(last)) <= budget * KEEP else budget
    lo, hi = start, last
    while lo < hi:  # fewest dropped turns under the limit; dropping more never makes it longer
        mid = (lo + hi) // 2
        if len(ids(mid)) <= limit:
            hi = mid
        else:
            lo = mid + 1
    return Fitted(ids(lo), lo)
