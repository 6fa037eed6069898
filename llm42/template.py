"""Prompt format: the 42dot SFT chat template, stop strings, and fitting a dialog to the window."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .conversation import Dialog
from .errors import UsageError
from .i18n import t

TEMPLATE_42DOT = (Path(__file__).parent / "templates" / "42dot_sft.jinja").read_text(encoding="utf-8")
STOP_42DOT = ("<human>:",)
MARK = "\x00llm42 reply {}\x00"  # stands for a reply's text while the template is rendered
MARKS = re.compile("\x00llm42 reply (\\d+)\x00")


class ContextError(UsageError):
    """A message that cannot fit in the context window even alone (exit code 2 when it ends the run)."""


@dataclass
class ChatFormat:
    """How to turn a dialog into ids for one model."""

    tokenizer: object
    stop_strings: tuple[str, ...] = ()

    def encode(self, messages: list[dict]) -> list[int]:
        """The prompt's ids. A reply whose generated ids a message carries ("ids") is fed as those ids, not as its
        text tokenized again (which can split it otherwise): the prompt then begins with what the KV cache of the
        last reply holds, in this process or stored on disk, and only the new turn is prefilled."""
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        text = self._render(plain)
        pieces = self._pieces(messages, plain, text) if any(m.get("ids") for m in messages) else None
        out: list[int] = []
        for piece in pieces or [text]:
            out += piece if isinstance(piece, list) else self.tokenizer.encode(piece, add_special_tokens=False)
        return out

    def _render(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _pieces(self, messages: list[dict], plain: list[dict], text: str) -> list[str | list[int]] | None:
        """The prompt `text` as text pieces and replies' generated ids, or None where it does not split so: a
        reply's ids are used when they decode to its text (whitespace aside: the chat strips a reply) and the text
        before them is the prompt as it stood when the reply was generated (what the template adds between that
        and the reply is whitespace, as 42dot's space after `<bot>:`); a template that changes the text of a
        reply (one that drops a part of it) keeps it tokenized as text."""
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        known = [i for i, m in enumerate(messages) if m.get("ids") and decode(m["ids"]).strip() == m["content"]]
        if not known:
            return None
        marked = [dict(m) for m in plain]
        for n, i in enumerate(known):
            marked[i]["content"] = MARK.format(n)
        whole = self._render(marked)
        if MARKS.sub(lambda m: plain[known[int(m[1])]]["content"], whole) != text:
            return None
        pieces, pos = [], 0
        for n, i in enumerate(known):
            asked, at = self._render(marked[:i]), whole.find(MARK.format(n))
            if not whole.startswith(asked) or at < len(asked) or whole[len(asked) : at].strip():
                return None
            pieces += [whole[pos : len(asked)], list(messages[i]["ids"])]
            pos = at + len(MARK.format(n))
        return [*pieces, whole[pos:]]

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
            cache[drop] = fmt.encode(dialog.render(drop, ids=True))
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
