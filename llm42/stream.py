"""The reply stream: token steps turned into typed text deltas with stop handling and timings."""

from __future__ import annotations

import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from .detokenize import StreamDecoder
from .generate import PromptCache, generate_steps
from .settings import SamplingSettings
from .stops import StopFilter


@dataclass
class Response:
    """One streamed piece of a reply; the last one carries finish_reason."""

    text: str
    token: int | None = None
    finish_reason: str | None = None  # "stop" | "length" | "interrupted"
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens served from the cache of earlier turns
    generation_tokens: int = 0
    ttft: float = 0.0  # seconds from the request to the first token
    decode_tps: float = 0.0  # tokens/s after the first token
    peak_memory_gb: float = 0.0
    top: list[tuple[str, float]] | None = field(default=None, repr=False)  # debug: top-5 candidates


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / 1e9 if sys.platform == "darwin" else rss * 1024 / 1e9


def top_candidates(tokenizer, scores: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
    probs = torch.softmax(scores.float(), dim=-1)[0]
    p, ids = probs.topk(k)
    return [(tokenizer.decode([int(i)]), float(q)) for i, q in zip(ids, p)]


def stream_reply(cache: PromptCache, tokenizer, prompt: list[int], s: SamplingSettings,
                 stop_ids: set[int], stop_strings: tuple[str, ...] = (), debug: bool = False) -> Iterator[Response]:
    """Yield Responses for one reply to `prompt`; the final one has finish_reason and the stats."""
    device = cache.model.device
    generator = None
    if not s.greedy:
        generator = torch.Generator(device=device)
        generator.manual_seed(s.seed if s.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1)
    decoder, stops = StreamDecoder(tokenizer), StopFilter(stop_strings)
    stats = Response("", prompt_tokens=len(prompt))
    start = time.perf_counter()
    first = last = start
    reason = "length"
    for step in generate_steps(cache, prompt, s, stop_ids, generator):
        last = time.perf_counter()
        if stats.generation_tokens == 0:
            first = last
            stats.reused_tokens = cache.reused
        stats.generation_tokens += 1
        if step.token in stop_ids:
            reason = "stop"
            break
        text, hit = stops.feed(decoder.step(step.token))
        top = top_candidates(tokenizer, step.scores) if debug else None
        if hit:
            yield Response(text, step.token, top=top)
            reason = "stop"
            break
        if text or debug:
            yield Response(text, step.token, top=top)
    if reason != "stop":
        text, hit = stops.feed(decoder.flush())
        yield Response(text + ("" if hit else stops.flush()))
    stats.finish_reason = reason
    stats.ttft = first - start
    n = stats.generation_tokens
    stats.decode_tps = (n - 1) / (last - first) if n > 1 and last > first else 0.0
    stats.peak_memory_gb = peak_memory_gb(device)
    yield stats
