"""The local reply stream: token steps turned into typed records with text, stop handling and timings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

from ..backend import Finish, Response
from ..model.device import peak_memory_gb
from ..settings import SamplingSettings
from .detokenize import StreamDecoder, piece
from .generate import PromptCache, generate_steps
from .speculate import Speculation
from .stops import StopFilter


def top_candidates(tokenizer, drawn, k: int = 5) -> list[tuple[str, float]]:
    """The most likely tokens of the distribution a token was drawn from, with their probabilities."""
    return [(piece(tokenizer, int(i)), float(q)) for i, q in zip(drawn.ids[:k], drawn.probs[:k])]


def stream_reply(
    cache: PromptCache,
    tokenizer,
    prompt: list[int],
    s: SamplingSettings,
    stop_ids: set[int],
    stop_strings: tuple[str, ...] = (),
    debug: bool = False,
    dropped: int = 0,
    speculation: Speculation | None = None,
) -> Iterator[Response]:
    """One record per generated token, with the running figures; the last one has finish_reason."""
    device = cache.model.device
    decoder, stops = StreamDecoder(tokenizer), StopFilter(stop_strings)
    r = Response("", prompt_tokens=len(prompt), dropped_turns=dropped)
    start = time.perf_counter()
    first = start
    steps = generate_steps(cache, prompt, s, stop_ids, explain=debug, speculation=speculation)
    try:
        for step in steps:
            now = time.perf_counter()
            if r.generation_tokens == 0:
                first = now
                r.reused_tokens, r.restored_tokens, r.ttft = cache.reused, cache.restored, now - start
            r.generation_tokens += 1
            r.drafted, r.accepted = r.drafted + step.drafted, r.accepted + step.accepted
            if r.generation_tokens > 1:
                r.decode_tps = (r.generation_tokens - 1) / (now - first) if now > first else 0.0
            text, hit = ("", False) if step.finish == Finish.STOP else stops.feed(decoder.step(step.token))
            if debug:
                r.token_text, r.top = piece(tokenizer, step.token), top_candidates(tokenizer, step.drawn)
            if hit:
                r.finish_reason = Finish.STOP
            elif step.finish == Finish.STOP:  # the end token: text held as a possible stop string was not one
                text, r.finish_reason = stops.flush(), Finish.STOP
            elif step.finish == Finish.LENGTH:
                tail, hit = stops.feed(decoder.flush())
                text += tail + ("" if hit else stops.flush())
                r.finish_reason = Finish.STOP if hit else Finish.LENGTH
            r.text = text
            if r.finish_reason:
                r.peak_memory_gb = peak_memory_gb(device)
                # the reply's tokens, the end token aside (the next prompt feeds them: template.ChatFormat.encode);
                # a stop string's tokens are no part of the reply's text
                r.ids = None if hit else list(decoder.ids)
                yield r
                break
            yield replace(r)
    finally:
        steps.close()  # drafts a verify pass fed past the reply's end are cropped here
    cache.keep()  # a whole reply: what it added goes to the store on disk (a stopped one does not)
