"""Token generation: prefill once, then one KV-cached step per token, as a generator of ids."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..backend import Finish
from ..model.plan import Decode, decode_path
from ..settings import SamplingSettings
from .cudagraph import capture
from .decode import Decoder
from .kvcache import KVCache
from .kvstore import KVStore
from .lookup import Lookup
from .pacing import Pacer
from .penalty import Scope
from .sampling import Drawn, pick, reply_generator
from .speculate import Speculation
from .tuning import Kernels


@dataclass
class Step:
    token: int
    finish: Finish | None = None  # STOP: the token is a stop id (not text); LENGTH: the last token allowed
    drawn: Drawn | None = None  # with `explain`: the candidates the token was drawn from
    drafted: int = 0  # on the first token of a verify pass: how many tokens it verified beyond this one
    accepted: int = 0  # 1 when this token was a draft the model accepted


class PromptCache:
    """The KV cache of the tokens fed so far, kept across turns.

    A new prompt reuses the longest common prefix and prefills only the rest, so edits, /undo, /regen,
    truncation or a new system prompt invalidate exactly what changed. Prefill is the model's forward (llm42's own
    Llama's, llama.py, or transformers'); a decode step is llm42's own (decode.py) where the model is a Llama, else
    transformers' forward too. How the machine runs each pass (oneDNN, threads) is the pacer's (pacing.py)."""

    def __init__(self, model, kv: KVCache, decoder: Decoder | None = None, graph=None, kernels: Kernels | None = None):
        """`decoder`: llm42's decode step over `kv` (None: transformers' forward for steps too, the slow twin);
        `graph`: that step captured as a CUDA graph (cudagraph.GraphStep), for a static `kv`."""
        self.model, self.kv, self.decoder, self.graph = model, kv, decoder, graph
        # oneDNN and the thread count around each pass (what a quiet machine runs best on kept for llm42's own step)
        self.pace = Pacer(kernels, model.device.type == "cpu", model if decoder is not None else None)
        self.max_len = kv.max_len
        self.ids: list[int] = []
        self.reused = 0  # prompt tokens the last prefill took from the cache
        self.last: tuple[int, torch.Tensor] | None = None  # (tokens fed, logits after them) of the last prefill
        self.store: KVStore | None = None  # the KV kept on disk between runs (engine.py opens it)
        self.restored = 0  # of `reused`, tokens read from that store
        self.preloaded = 0  # tokens `preload` read from it that no prompt has used yet

    @property
    def decode(self) -> Decode:
        """The path this cache's steps run (as the plan decided it)."""
        return Decode.FORWARD if self.decoder is None else Decode.GRAPH if self.kv.static else Decode.STEP

    def rewind(self) -> None:
        """After a forward cut short (Ctrl+C, an error): keep what is cached up to the last token fed whole. The
        KV buffers past `kv.n` may hold a half-written position, never read; `ids` is what `kv.n` covers."""
        self.kv.crop(len(self.ids))

    @contextlib.contextmanager
    def _whole(self):
        """Around a forward pass: cut short (Ctrl+C, an error), the cache goes back to what it held before it."""
        try:
            yield
        except BaseException:
            self.rewind()
            raise

    def reset(self) -> None:
        self.ids = []
        self.last = None
        self.kv.crop(0)

    def reserve(self, tokens: int) -> None:
        """Room in the KV buffers for `tokens` positions (a prompt and its reply), made now: the store's thread
        (a reply's KV written out, a resumed chat's read in) finishes with the buffers first."""
        if self.store is not None:
            self.store.wait()
        self.kv.reserve(tokens)

    def reuse(self, prompt: list[int]) -> int:
        """Crop to the part of `prompt` already cached; return its length. That is all of `prompt` only when the
        last prefill ended exactly there (its logits are kept: /regen starts from the very same numbers, so a
        greedy reply repeats itself), else at least one token is left to feed."""
        if self.store is not None:
            self.store.wait()  # the last reply's KV is still being written out: the buffers stay as they are till then
        if self.kv.n > len(self.ids):  # a step or verify stopped (Ctrl+C) after writing, before recording its tokens
            self.rewind()
        elif self.kv.n < len(self.ids):
            self.reset()
        n = 0
        limit = min(len(self.ids), len(prompt))
        while n < limit and self.ids[n] == prompt[n]:
            n += 1
        if n == len(prompt) and (self.last is None or self.last[0] != n):
            n -= 1
        self.restored, self.preloaded = min(n, self.preloaded), 0
        if self.store is not None and n < len(prompt) - 1 and (n == 0 or n < len(self.ids)):  # a new chat, or
            # one that goes another way than the cached one (/load, /undo): a longer prefix may be stored
            if (got := self.store.restore(prompt, self.kv, n)) > n:
                self.ids, self.last, self.restored = prompt[:got], None, got
                n = got
            elif self.kv.n < n:  # a stored file that failed to read midway took the cached prefix with it
                self.reset()
                n = 0
        self.crop(n)
        if self.last is not None and self.last[0] > n:
            self.last = None
        self.reused = n
        return n

    def preload(self, prompt: list[int]) -> None:
        """Read the stored KV of `prompt`'s longest stored prefix in the background (a resumed chat's history, before
        its next message is typed); the next prompt's `reuse` waits for it, then finds it cached."""

        @torch.inference_mode()
        def read() -> None:
            try:
                self.reuse(prompt)
                self.preloaded = self.restored
            except Exception:  # anything: the next prompt is prefilled as if nothing were stored
                self.reset()

        self.store.beside(read)

    def keep(self) -> None:
        """After a reply: what it added goes to the store on disk (written beside the chat; the next prefill waits
        for it)."""
        if self.store is not None:
            self.store.save(self.ids, self.kv)

    @torch.inference_mode()
    def feed(self, ids: list[int]) -> torch.Tensor:
        """Run the model's forward on `ids` after the cached ones; logits (1, vocab) of the last position."""
        x = torch.tensor([ids], dtype=torch.long, device=self.model.device)
        self.pace.tokens(len(ids))
        with self._whole():
            self.kv.begin(len(ids))
            if hasattr(self.model, "prefill"):  # llm42's own Llama (llama.py)
                logits = self.model.prefill(x, self.kv)
            else:
                out = self.model(input_ids=x, cache=self.kv.hf_cache(), use_cache=True, logits_to_keep=1)
                logits = out.logits[:, -1]
            self.kv.commit()
        self.ids.extend(ids)
        self.last = (len(self.ids), logits)
        return logits

    @torch.inference_mode()
    def step(self, token: int) -> torch.Tensor:
        """One more token; the next logits (1, vocab)."""
        if self.decoder is None:
            return self.feed([token])
        with self.pace.step(), self._whole():
            if self.kv.static:  # fixed shapes: the position goes in as a tensor (a CUDA graph replays this)
                logits = self.static_step(token)
            else:
                logits = self.decoder.step(token)
        self.ids.append(token)
        return logits

    @torch.inference_mode()
    def verify(self, ids: list[int]) -> torch.Tensor:
        """Feed `ids` in one pass of llm42's decode step; the logits [len(ids), vocab] after each (speculation)."""
        self.pace.tokens(len(ids))
        with self._whole():
            logits = self.decoder.verify(ids)
        self.ids.extend(ids)
        return logits

    def crop(self, n: int) -> None:
        """Keep the first `n` tokens fed (a verify's rejected drafts go)."""
        self.kv.crop(n)
        del self.ids[n:]

    def static_step(self, token: int) -> torch.Tensor:
        if self.graph is not None:
            logits = self.graph.step(token, self.kv.n)
        else:  # the same step, not captured (the CPU runs it in tests)
            device = self.model.device
            logits = self.decoder.static_step(
                torch.tensor([token], device=device), torch.tensor([self.kv.n], device=device)
            )
        self.kv.n += 1
        return logits


def open_cache(
    model,
    window: int | None = None,
    kernels: Kernels | None = None,
    decode: Decode | None = None,
    warn=lambda why: None,
) -> PromptCache:
    """A PromptCache and the decode step it runs: `decode` as the load plan decided it (default: `decode_path` for
    this model and device). GRAPH: whole-window buffers and a fixed-shape step, captured as a CUDA graph on a GPU
    (`warn(why)` if the stack cannot capture: the same step runs op by op; on the CPU it always does, in tests)."""
    kernels = kernels or Kernels()
    window = window or int(getattr(model.config, "max_position_embeddings", 2048))
    decode = decode or decode_path(model.config, model.device.type)
    static = decode is Decode.GRAPH
    kv = KVCache(model.config, window, model.dtype, model.device, static=static)
    decoder = Decoder(model, kv, kernels.own_matmuls, kernels.own_attention) if decode is not Decode.FORWARD else None
    graph = None
    if static and model.device.type == "cuda":
        graph = capture(decoder, warn)  # before anything is cached: see GraphStep
    return PromptCache(model, kv, decoder, graph, kernels)


def prefill(cache: PromptCache, prompt: list[int]) -> tuple[torch.Tensor, int]:
    """Feed the uncached part of the prompt; (last logits, tokens reused from the cache)."""
    cache.pace.look()
    reused = cache.reuse(prompt)
    if reused == len(prompt):
        return cache.last[1], reused
    return cache.feed(prompt[reused:]), reused


@torch.inference_mode()
def generate_steps(
    cache: PromptCache,
    prompt: list[int],
    s: SamplingSettings,
    stop_ids: set[int],
    generator: torch.Generator | None = None,
    explain: bool = False,
    speculation: Speculation | None = None,
) -> Iterator[Step]:
    """Yield sampled tokens until a stop id (yielded too, marked "stop") or max_new_tokens (the last marked "length").
    This is the one place that decides where a reply ends.

    With `speculation`, tokens drafted from the conversation (lookup.py) are verified several at a time: each row
    of a verify pass goes through the same sampling as a plain step (the penalty over everything before it), one
    draw per token in order; a draw equal to the draft accepts it, any other is emitted and ends the pass. The
    tokens, and at a seed the draws, are those of plain decoding; the cache is cropped to what plain decoding
    would hold, also when the reader stops early.

    The sampler's state lives here, for one reply: its random generator (`generator`, else one seeded from
    `s.seed` or the OS) and the tokens the penalty covers."""
    generator = generator if generator is not None else reply_generator(s)
    seen = None
    if s.repetition_penalty != 1.0:
        seen = Scope(cache.model.config.vocab_size, cache.model.device, prompt, s.repeat_last_n)
    # room for the whole reply now: buffers grown mid-reply stalled one step by the copy and new memory (90 ms at 256
    # positions of the 42dot shape; more where the new memory is a VM's first touch), and the thread pacing took it
    # for a busy machine
    cache.reserve(len(prompt) + s.max_new_tokens)
    logits, _ = prefill(cache, prompt)
    lookup = Lookup(prompt, stop_ids) if speculation is not None else None
    rows, draft, before, n = [logits], [], len(cache.ids), 0  # row i: the logits after `before + i` tokens
    consistent = before
    try:
        while True:
            for i, row in enumerate(rows):
                consistent = before + i  # what plain decoding would have fed by now
                drawn = pick(row, s, seen.tensor() if seen else None, generator, explain)
                token, n = drawn.token, n + 1
                if seen is not None:
                    seen.add(token)
                if lookup is not None:
                    lookup.add(token)
                accepted = i < len(draft) and token == draft[i]
                finish = Finish.STOP if token in stop_ids else Finish.LENGTH if n == s.max_new_tokens else None
                yield Step(token, finish, drawn if explain else None, len(draft) if i == 0 else 0, int(accepted))
                if finish:
                    if draft:
                        speculation.record(len(draft), i + accepted)
                    return
                if not accepted:
                    break
            if draft:
                speculation.record(len(draft), i)
            cache.crop(consistent)
            k = min(speculation.choose(), s.max_new_tokens - n - 1) if speculation is not None else 0
            draft = lookup.draft(k) if k > 0 else []
            before = consistent + 1
            started = time.perf_counter()
            rows = cache.verify([token, *draft]) if draft else [cache.step(token)]
            if speculation is not None:  # its costs are learned from these timings
                seconds = time.perf_counter() - started
                speculation.verified(len(draft), seconds) if draft else speculation.stepped(seconds)
    finally:
        if len(cache.ids) > consistent and cache.kv.n == len(cache.ids):
            cache.crop(consistent)  # drafts fed but not (yet) emitted when the reader stopped
