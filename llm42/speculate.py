"""How many tokens to draft before a verify pass, chosen so that the expected tokens per second is highest.

A verify of k drafted tokens feeds k + 1 rows through the model in one pass: on a CPU the weights are read once
for all rows, so it costs little more than one step while reading the weights dominates, and more where compute
is close to memory time (two cores, int4). What it costs is measured once per machine, model shape and weight
width (cached with the kernel choice); how often drafts are accepted is tracked as the chat goes. With a
per-token acceptance rate a, a pass with k drafts yields 1 + a + ... + a^k tokens; k = 0 is plain decoding,
chosen whenever nothing beats it (an open chat with nothing to copy)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from .cpu.tuning import remember, remembered

SIZES = (1, 2, 3, 4, 6, 8)  # drafted tokens whose verify is timed; the others are interpolated
DECAY = 0.9  # per verify: what the acceptance rate remembers (about the last ten passes)
PROBE_EVERY = 24  # steps without drafting after which one short draft is tried again (acceptance can rise)
MARGIN = 1.03  # a draft length must beat plain decoding by this much


@dataclass
class Speculation:
    """The verify costs on this machine and the acceptance seen so far."""

    costs: list[float]  # costs[k]: a verify of k drafted tokens, in steps (costs[0] = 1)
    hits: float = 1.0  # drafted tokens accepted (a prior of one in two)
    misses: float = 1.0  # passes that ended at a rejected draft
    idle: int = 0  # steps since the last draft
    drafted: int = field(default=0, repr=False)  # totals, for --verbose and /stats
    accepted: int = field(default=0, repr=False)

    @property
    def rate(self) -> float:
        return self.hits / (self.hits + self.misses)

    def gain(self, k: int) -> float:
        """Expected tokens per step's time with k drafts."""
        a = self.rate
        return sum(a**i for i in range(k + 1)) / self.costs[k]

    def choose(self) -> int:
        """The draft length to try now (0: a plain step)."""
        best = max(range(len(self.costs)), key=self.gain)
        if self.gain(best) > MARGIN:
            return best
        self.idle += 1
        if self.idle >= PROBE_EVERY:
            self.idle = 0
            return 1
        return 0

    def record(self, drafted: int, accepted: int) -> None:
        self.idle = 0
        self.hits = self.hits * DECAY + accepted
        self.misses = self.misses * DECAY + (accepted < drafted)
        self.drafted += drafted
        self.accepted += accepted


def measure(cache, sizes=SIZES, context: int = 64) -> list[float]:
    """Time one step and verifies of each size on this cache's model (emptied before and after); the cost of
    k drafts in steps, for k = 0 .. max(sizes)."""
    vocab = cache.model.config.vocab_size
    ids = [(7 * i + 11) % vocab for i in range(context)]
    cache.reset()
    cache.feed(ids)

    def timed(tokens: list[int]) -> float:
        best = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            cache.step(tokens[0]) if len(tokens) == 1 else cache.verify(tokens)
            best = min(best, time.perf_counter() - t)
            cache.crop(context)
        return best

    timed(ids[:1]), timed(ids[:3])  # warm up
    step = timed(ids[:1])
    at = {0: 1.0, **{k: timed(ids[: k + 1]) / step for k in sizes}}
    cache.reset()
    known = sorted(at)
    costs = []
    for k in range(max(sizes) + 1):  # linear between measured sizes
        lo = max(x for x in known if x <= k)
        hi = min(x for x in known if x >= k)
        costs.append(at[lo] if lo == hi else at[lo] + (at[hi] - at[lo]) * (k - lo) / (hi - lo))
    return costs


def speculation_for(cache, status=None) -> Speculation | None:
    """The speculation state for a model whose cache runs llm42's own step with growing buffers (the CPU); None
    elsewhere. Verify costs are measured on the first start on this machine and model shape, then remembered."""
    if cache.decoder is None or cache.kv.static:
        return None
    costs = remembered(cache.model, "verify")
    if not (isinstance(costs, list) and len(costs) == max(SIZES) + 1):
        with status or contextlib.nullcontext():
            costs = measure(cache)
        remember(cache.model, "verify", costs)
    return Speculation(costs)
