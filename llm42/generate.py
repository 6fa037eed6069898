"""Token generation: prefill once, then one KV-cached step per token, as a generator of ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from transformers import DynamicCache

from .kernels import Kernels
from .kvcache import new_cache

from .sampling import pick, processors
from .settings import SamplingSettings


@dataclass
class Step:
    token: int
    scores: torch.Tensor  # (1, vocab) processed logits the token was drawn from


class PromptCache:
    """The KV cache of the tokens fed so far, kept across turns.

    A new prompt reuses the longest common prefix and prefills only the rest, so edits,
    /undo, /regen, truncation or a new system prompt invalidate exactly what changed."""

    def __init__(self, model, max_len: int | None = None, kernels: Kernels | None = None):
        self.model = model
        self.kernels = kernels or Kernels()
        self.max_len = max_len  # the context window: the cache never grows past it
        self.ids: list[int] = []
        self.kv: DynamicCache | None = None
        self.reused = 0  # prompt tokens the last prefill took from the cache

    def reset(self) -> None:
        self.ids, self.kv = [], None

    def reuse(self, prompt: list[int]) -> int:
        """Crop to the part of `prompt` already cached (leaving >= 1 token to feed); return its length."""
        if self.kv is None or self.kv.get_seq_length() != len(self.ids):
            self.reset()
        n = 0
        limit = min(len(self.ids), len(prompt) - 1)
        while n < limit and self.ids[n] == prompt[n]:
            n += 1
        if n == 0 or self.kv is None:
            self.kv, self.ids = new_cache(self.model.config, self.max_len), []
        elif n < len(self.ids):
            self.kv.crop(n - len(self.ids))  # a negative count removes that many from the end
            del self.ids[n:]
        self.reused = n
        return n

    def feed(self, ids: list[int]) -> torch.Tensor:
        """Run the model on `ids` after the cached ones; logits (1, vocab) of the last position."""
        x = torch.tensor([ids], dtype=torch.long, device=self.model.device)
        self.kernels.use(len(ids))
        try:
            out = self.model(input_ids=x, cache=self.kv, use_cache=True, logits_to_keep=1)
        except BaseException:
            self.reset()  # a forward cut short leaves layers of different lengths
            raise
        self.ids.extend(ids)
        return out.logits[:, -1, :]


def prefill(cache: PromptCache, prompt: list[int]) -> tuple[torch.Tensor, int]:
    """Feed the uncached part of the prompt; (last logits, tokens reused from the cache)."""
    reused = cache.reuse(prompt)
    return cache.feed(prompt[reused:]), reused


def decode_one_token(cache: PromptCache, token: int) -> torch.Tensor:
    return cache.feed([token])


@torch.inference_mode()
def generate_steps(cache: PromptCache, prompt: list[int], s: SamplingSettings,
                   stop_ids: set[int], generator: torch.Generator | None = None) -> Iterator[Step]:
    """Yield sampled tokens until a stop id (yielded too) or max_new_tokens."""
    steps = processors(s)
    device = cache.model.device
    seen = torch.empty((1, len(prompt) + s.max_new_tokens), dtype=torch.long, device=device)  # for the penalty
    seen[0, : len(prompt)] = torch.tensor(prompt, device=device)
    n = len(prompt)
    logits, _ = prefill(cache, prompt)
    for i in range(s.max_new_tokens):
        scores = steps(seen[:, :n], logits.float()) if steps else logits
        token = pick(scores, s.greedy, generator)
        seen[0, n] = token
        n += 1
        yield Step(token, scores)
        if token in stop_ids or i == s.max_new_tokens - 1:
            return
        logits = decode_one_token(cache, token)
