"""Prompt format: the 42dot SFT chat template, stop strings, and fitting a dialog to the window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .conversation import Dialog

TEMPLATE_42DOT = (Path(__file__).parent / "templates" / "42dot_sft.jinja").read_text(encoding="utf-8")
SYSTEM_42DOT = (
    "호기심 많은 인간 (human)과 인공지능 봇 (AI bot)의 대화입니다. "
    "봇의 이름은 42dot LLM이고 포티투닷 (42dot)에서 개발했습니다. "
    "봇은 인간의 질문에 대해 친절하게 유용하고 상세한 답변을 제공합니다. "
)
STOP_42DOT = ("<human>:",)


class ContextError(ValueError):
    """A message that cannot fit in the context window even alone."""


@dataclass
class ChatFormat:
    """How to turn a dialog into ids for one model."""

    tokenizer: object
    stop_strings: tuple[str, ...] = ()
    is_42dot: bool = False

    def encode(self, messages: list[dict]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)


def chat_format(tokenizer, model_path: str) -> ChatFormat:
    """Install the 42dot template on 42dot models and on tokenizers that have none."""
    if "42dot" in model_path.lower() or not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = TEMPLATE_42DOT
        return ChatFormat(tokenizer, STOP_42DOT, is_42dot=True)
    return ChatFormat(tokenizer)


@dataclass
class Fitted:
    ids: list[int]
    dropped: int  # oldest whole turns left out to fit


def fit(fmt: ChatFormat, dialog: Dialog, max_new_tokens: int, window: int) -> Fitted:
    """Drop the oldest whole turns until prompt + max_new_tokens fits the window.

    The system prompt and the newest turn are always kept; if they alone do not fit, ContextError."""
    budget = window - max_new_tokens
    cache: dict[int, list[int]] = {}

    def ids(drop: int) -> list[int]:
        if drop not in cache:
            cache[drop] = fmt.encode(dialog.render(drop))
        return cache[drop]

    lo, hi = 0, max(len(dialog.turns()) - 1, 0)
    if len(ids(hi)) > budget:
        raise ContextError(
            f"this message needs {len(ids(hi))} prompt tokens, but the window is {window} tokens with "
            f"{max_new_tokens} kept for the reply; shorten it or lower max new tokens"
        )
    while lo < hi:  # fewest dropped turns that fit; dropping more never makes it longer
        mid = (lo + hi) // 2
        if len(ids(mid)) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return Fitted(ids(lo), lo)
