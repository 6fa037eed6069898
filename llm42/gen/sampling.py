"""Sampling: a pure function from the last logits (and the tokens seen so far) to the next token id.

The distribution is transformers' own: repetition penalty, then temperature, top-k, top-p, in the order
`generate` applies its processors (tests compare the two). It is computed on the top-k candidates only:
the whole vocabulary (50,304 for 42dot) is touched once, by the penalty and one top-k, not sorted,
exponentiated and drawn from every step. On the CPU llm42's kernel computes the same distribution in one call
(cpu/kernels.c, llm42_sample_dist): the dozen PyTorch operations below, each on caches that a decode step had just
swept, took 0.38 ms a token on SmolLM2 at 42dot's defaults (6 % of its step), the kernel 0.12 ms with the draw."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..cpu import native
from ..settings import SamplingSettings


@dataclass
class Drawn:
    token: int
    ids: torch.Tensor | None = None  # the candidates (CPU, descending) and their probabilities; with `explain`
    probs: torch.Tensor | None = None


def reply_generator(s: SamplingSettings) -> torch.Generator | None:
    """The random generator of one sampled reply (None when greedy): seeded by --seed, else by the OS; draws on the
    CPU, from the few candidates."""
    if s.greedy:
        return None
    seed = s.seed if s.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
    return torch.Generator().manual_seed(seed)


def penalize(scores: torch.Tensor, seen: torch.Tensor, penalty: float) -> None:
    """In place: seen tokens' logits divided by `penalty` when positive, multiplied when negative (CTRL's rule,
    as RepetitionPenaltyLogitsProcessor)."""
    if penalty != 1.0 and seen.numel():
        v = scores.index_select(0, seen)
        scores.index_copy_(0, seen, torch.where(v < 0, v * penalty, v / penalty))


def candidates(scores: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k scores and ids, descending; every token tied with the k-th is kept (as TopKLogitsWarper
    keeps all scores >= the k-th). top_k 0: the whole vocabulary."""
    if 0 < top_k < scores.shape[0]:
        values, ids = scores.topk(top_k)
        tied = int((scores >= values[-1]).sum())
        if tied > top_k:
            values, ids = scores.topk(tied)
        return values, ids
    return scores.sort(descending=True)


def nucleus(values: torch.Tensor, ids: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """What top-p keeps of the candidates, as TopPLogitsWarper decides it: in ascending order of score, drop
    the tokens whose cumulative probability stays within 1 - top_p; always keep the most likely. (Between
    tokens of exactly equal score at that edge, which one stays is up to the sort, there as here.)"""
    values, order = values.sort()
    ids = ids[order]
    if top_p < 1.0:
        keep = torch.softmax(values, dim=0).cumsum(0) > 1 - top_p
        keep[-1] = True
        values, ids = values[keep], ids[keep]
    return values, ids


def pick(
    logits: torch.Tensor,
    s: SamplingSettings,
    seen: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    explain: bool = False,
) -> Drawn:
    """logits [vocab] (any float dtype, any device) -> the next token. Temperature 0 is argmax, never a draw.
    A `generator` on the CPU draws (the few candidates are moved there); `explain` keeps the distribution.
    On the CPU, llm42's kernel computes the same distribution in one call (native.sample_dist)."""
    dist = None if explain and s.greedy else _native(logits, s, seen)
    if dist is not None:
        ids, probs = dist
        if s.greedy:
            return Drawn(int(ids[0]))
        token = int(ids[draw(probs, generator)])
        return Drawn(token, ids.clone(), probs.clone()) if explain else Drawn(token)
    scores = logits.reshape(-1).to(torch.float32, copy=True)
    if seen is not None:
        penalize(scores, seen, s.repetition_penalty)
    if s.greedy:
        token = int(scores.argmax())
        if not explain:
            return Drawn(token)
        probs, ids = torch.softmax(scores, 0).topk(5)
        return Drawn(token, ids.cpu(), probs.cpu())
    if s.temperature != 1.0:
        scores /= s.temperature
    values, ids = candidates(scores, s.top_k)
    values, ids = nucleus(values.cpu(), ids.cpu(), s.top_p)
    probs = torch.softmax(values, dim=0)
    token = int(ids[draw(probs, generator)])
    if not explain:
        return Drawn(token)
    order = probs.argsort(descending=True)
    return Drawn(token, ids[order], probs[order])


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """An index drawn with these probabilities (any order, summing to about 1): the first whose running sum passes
    one uniform draw. torch.multinomial ran a parallel region for the few candidates, and after a decode step the
    OpenMP pool's other thread had to be woken for it: 61 µs a token in the chat (8 µs alone), half of sampling."""
    ps = probs.tolist()
    u = torch.rand((), generator=generator, dtype=torch.float64).item() * sum(ps)
    total = 0.0
    for i, p in enumerate(ps):
        total += p
        if u < total:
            return i
    return max(i for i, p in enumerate(ps) if p > 0)  # u at the very top (rounding): the last possible one


def _native(logits: torch.Tensor, s: SamplingSettings, seen: torch.Tensor | None):
    """(ids, probabilities) from llm42's kernel where it takes these logits and settings, else None."""
    if logits.device.type != "cpu" or logits.dtype not in (torch.bfloat16, torch.float32) or native.library() is None:
        return None
    if not (s.greedy or 0 < s.top_k <= 64):
        return None
    return native.sample_dist(logits.reshape(-1).contiguous(), seen, s.repetition_penalty, s.temperature, s.top_k,
                              s.top_p)  # fmt: skip
