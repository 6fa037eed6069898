"""Sampling: pure functions from the last logits (and the ids so far) to the next token id."""

from __future__ import annotations

import torch
from transformers.generation.logits_process import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from .settings import SamplingSettings


def processors(s: SamplingSettings) -> LogitsProcessorList:
    """(ids, logits) -> logits steps in the order transformers' generate applies them."""
    steps = LogitsProcessorList()
    if s.repetition_penalty != 1.0:
        steps.append(RepetitionPenaltyLogitsProcessor(s.repetition_penalty))
    if not s.greedy:
        if s.temperature != 1.0:
            steps.append(TemperatureLogitsWarper(s.temperature))
        if s.top_k > 0:
            steps.append(TopKLogitsWarper(s.top_k))
        if s.top_p < 1.0:
            steps.append(TopPLogitsWarper(s.top_p))
    return steps


def pick(scores: torch.Tensor, greedy: bool, generator: torch.Generator | None = None) -> int:
    """scores (1, vocab) after processing -> token id. Greedy is argmax, never a draw."""
    if greedy:
        return int(scores.argmax(dim=-1))
    probs = torch.softmax(scores.float(), dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def sample(ids: torch.Tensor, logits: torch.Tensor, s: SamplingSettings,
           generator: torch.Generator | None = None) -> int:
    """ids (1, n) so far, logits (1, vocab) for the next position -> next token id."""
    return pick(processors(s)(ids, logits.float()), s.greedy, generator)
