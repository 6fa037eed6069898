"""How many tokens to draft before a verify pass, chosen so that the expected tokens per second is highest.

A verify of k drafted tokens feeds k + 1 rows through the model in one pass: on a CPU the weights are read once
for all rows, so it costs little more than one step while reading the weights dominates, and more where compute
is close to memory time (two cores, int4). What it costs is learned from the verify passes a chat runs, each timed
against the plain steps around it: a price per drafted token for every length, and each length's own cost once a
few of its verifies were timed (the costs are not a line: a 9-row pass over SmolLM2 at the contexts of a chat cost
1.95 steps where 5 rows cost 1.31; choosing by the line lost 4 % of the speed-up, replayed). A first start assumes a
price and measures nothing before the first reply; what was learned is kept per machine, model shape and weight
width for the next start. A length whose cost was measured high is tried again now and then (STALE): kept from an
earlier start (older kernels, a busy minute), 5 and 8 drafts over SmolLM2 stood at 1.86 and 2.49 steps where they
cost 1.2-1.4, and the chooser never drafted more than 4 (grounded set, in one process against the old chooser: 1.54x
-> 1.58-1.59x at the default flags, 2.29x -> 2.47-2.49x greedy). How often drafts are accepted is tracked as the
chat goes, per position in the draft. With a_i the rate at position i (given the ones before were accepted), a pass
with k drafts yields 1 + a_1 + a_1 a_2 + ... + a_1...a_k tokens; k = 0 is plain decoding, chosen whenever nothing
beats it (an open chat with nothing to copy)."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..model.plan import Decode
from .tuning import keeper, remembered

SIZES = (1, 2, 3, 4, 6, 8)  # drafted tokens whose verify is timed; the others are interpolated
DEPTH = max(SIZES)  # the longest draft
DECAY = 0.9  # per verify: what the acceptance rates remember (about the last ten passes)
PRIOR = 2.0  # passes' worth of weight a position's rate borrows from the one before it
PROBE_EVERY = 24  # steps without drafting after which one short draft is tried again (acceptance can rise)
MARGIN = 1.03  # a draft length must beat plain decoding by this much
KEY = "verify|4"  # what the learned costs are kept under (with the machine and model): {"price": p, "own": {k: cost}}
ASSUMED = 0.25  # the price of a drafted token, in steps, until verifies on this machine say otherwise (42dot shape:
# bf16 0.13-0.16, int8 0.3-0.6, int4 0.4-0.7 on two cores)
SAMPLES = 16  # verifies the learned price (and each length's own cost) is the median of
OWN = 3  # verifies of one length after which its own cost stands instead of the price's line (a cost kept from an
# earlier start stands at once, and counts as one verify among this start's first few)
STALE = 64  # verifies after which a length not verified since, whose cost on the price's line would beat the chosen
# one, is tried once: a cost measured high (a busy moment, older kernels) is otherwise never measured again


@dataclass
class Speculation:
    """The verify costs on this machine and the acceptance seen so far, per draft position: a draft is a run
    copied from the conversation, so once its first tokens are right the next ones mostly are too (quoting a
    paragraph: 85 % of first drafted tokens accepted, 91 % of second ones after an accepted first, 96 % of third)."""

    costs: list[float]  # costs[k]: a verify of k drafted tokens, in steps (costs[0] = 1)
    # per position: drafts accepted up to it, and accepted there too (decayed counts; at first one in two at the
    # first position, a prior that fades as passes are recorded)
    reached: list[float] = field(default_factory=lambda: [2.0] + [0.0] * (DEPTH - 1))
    taken: list[float] = field(default_factory=lambda: [1.0] + [0.0] * (DEPTH - 1))
    idle: int = 0  # steps since the last draft
    drafted: int = field(default=0, repr=False)  # totals, for --verbose and /stats
    accepted: int = field(default=0, repr=False)
    # learning the costs from the chat's own passes (speculation_for): the price of a drafted token in steps, the
    # recent plain step's seconds, each verify's price, and where a learned price is kept; None: costs as given
    price: float | None = None
    step_s: float | None = field(default=None, repr=False)
    prices: deque = field(default_factory=lambda: deque(maxlen=SAMPLES), repr=False)
    own: dict = field(default_factory=dict, repr=False)  # draft length -> its verifies' recent costs, in steps
    prior: dict = field(default_factory=dict, repr=False)  # draft length -> its cost kept by an earlier start
    verifies: int = field(default=0, repr=False)  # verifies chosen so far
    tried: dict = field(default_factory=dict, repr=False)  # draft length -> `verifies` when last chosen or timed
    keep: Callable[[dict], None] | None = field(default=None, repr=False)
    kept: dict | None = field(default=None, repr=False)

    @classmethod
    def learning(cls, kept: dict | None = None, keep: Callable[[dict], None] | None = None) -> Speculation:
        """Costs that start from what an earlier start learned (`kept`: {"price": p, "own": {k: cost}}; None: ASSUMED
        per drafted token) and follow what verifies cost here."""
        start = ASSUMED if kept is None else kept["price"]  # a learned price of 0 is a price, not none
        spec = cls(_linear(start), price=start, keep=keep, kept=kept)
        spec.prior = {int(k): cost for k, cost in (kept or {}).get("own", {}).items()}
        spec.costs = spec._curve(spec._own_costs())
        return spec

    def stepped(self, seconds: float) -> None:
        """A plain step took `seconds` (what verifies are priced against)."""
        if self.price is not None:
            self.step_s = seconds if self.step_s is None else 0.7 * self.step_s + 0.3 * seconds

    def verified(self, drafted: int, seconds: float) -> None:
        """A verify of `drafted` tokens took `seconds`: its price per drafted token goes into the price (the median
        of the last few, the assumed price counted while they are fewer than five), its cost into its length's."""
        if self.price is None or self.step_s is None or drafted < 1:
            return
        cost = max(1.0, seconds / self.step_s)
        self.prices.append((cost - 1) / drafted)
        self.own.setdefault(drafted, deque(maxlen=SAMPLES)).append(cost)
        self.tried[drafted] = self.verifies
        seen = list(self.prices)
        self.price = statistics.median(seen if len(seen) >= 5 else [*seen, self.price])
        own = self._own_costs()
        self.costs = self._curve(own)
        if self.keep is not None and len(seen) >= 5 and self._moved(own):
            self.kept = {"price": self.price, "own": own}
            self.keep(self.kept)

    def _own_costs(self) -> dict[int, float]:
        """Per draft length with a few verifies timed (or a cost kept from an earlier start): the median of their
        costs (the kept one counted as one until this start has timed a few)."""
        out = {}
        for k in {*self.own, *self.prior} - {0}:
            seen = list(self.own.get(k, ()))
            if len(seen) < OWN and k in self.prior:
                seen.append(self.prior[k])
            if len(seen) >= OWN or k in self.prior:
                out[k] = statistics.median(seen)
        return {k: out[k] for k in sorted(out) if k <= DEPTH}

    def _curve(self, own: dict[int, float]) -> list[float]:
        """Per draft length: its own cost where known, else the price's line; never less for more drafts."""
        costs = _linear(self.price)
        for k, cost in own.items():
            costs[k] = cost
        for k in range(1, DEPTH + 1):
            costs[k] = max(costs[k], costs[k - 1])
        return costs

    def _moved(self, own: dict[int, float]) -> bool:
        """Whether what would be kept now differs by more than a tenth from what was (a price, or a length's cost)."""
        if self.kept is None:
            return True
        was = self.kept.get("own", {})
        if abs(self.price - self.kept["price"]) > 0.1 * max(self.kept["price"], 0.05):
            return True
        return any(abs(cost - was.get(k, 0)) > 0.1 for k, cost in own.items())

    @classmethod
    def seeing(cls, costs: list[float], rate: float, passes: float) -> Speculation:
        """As if `passes` drafts had each been accepted token by token with probability `rate`."""
        reached = [passes * rate**i for i in range(DEPTH)]
        return cls(costs, reached, [r * rate for r in reached])

    def rates(self) -> list[float]:
        """Per position: how likely a drafted token is accepted when the ones before it were (a position seldom
        reached leans on the one before it)."""
        rate = self.taken[0] / max(self.reached[0], 1e-9)
        out = [rate]
        for reached, taken in zip(self.reached[1:], self.taken[1:]):
            rate = (taken + PRIOR * rate) / (reached + PRIOR)
            out.append(rate)
        return out

    def gain(self, k: int, rates: list[float] | None = None, cost: float | None = None) -> float:
        """Expected tokens per step's time with k drafts (at `cost` steps a verify, else as learned)."""
        expected = reach = 1.0
        for rate in (rates or self.rates())[:k]:
            reach *= rate
            expected += reach
        return expected / (cost or self.costs[k])

    def choose(self) -> int:
        """The draft length to try now (0: a plain step)."""
        rates = self.rates()
        best = max(range(len(self.costs)), key=lambda k: self.gain(k, rates))
        if self.gain(best, rates) > MARGIN:
            self.verifies += 1
            best = self._stale(best, rates)
            self.tried[best] = self.verifies
            return best
        self.idle += 1
        if self.idle >= PROBE_EVERY:
            self.idle = 0
            return 1
        return 0

    def _stale(self, best: int, rates: list[float]) -> int:
        """A length not chosen for STALE verifies whose cost on the price's line would beat `best` (its own cost was
        measured high, perhaps in a busy moment): tried once, so its cost is measured again; else `best`."""
        if self.price is None:  # costs as given (a replay, a test): nothing is learned
            return best
        line, top = _linear(self.price), self.gain(best, rates)
        for k in range(DEPTH, 0, -1):
            stale = self.verifies - self.tried.get(k, -STALE) >= STALE
            if stale and self.costs[k] > line[k] and self.gain(k, rates, line[k]) > top:
                return k
        return best

    def record(self, drafted: int, accepted: int) -> None:
        self.idle = 0
        self.reached = [r * DECAY for r in self.reached]
        self.taken = [t * DECAY for t in self.taken]
        for i in range(min(drafted, accepted + 1)):
            self.reached[i] += 1
            self.taken[i] += i < accepted
        self.drafted += drafted
        self.accepted += accepted


def measure(cache, sizes=SIZES, context: int = 64, budget: float = 3.0) -> list[float]:
    """Time verifies of each size against a step on this cache's model (emptied before and after); the cost of
    k drafts in steps, for k = 0 .. max(sizes). Each verify is paired with a step timed just before it and the
    median ratio kept (at least 3 rounds, more within `budget` seconds), so a machine whose speed drifts (a
    shared or busy one) measures the ratio, not the drift; never less for more drafts."""
    vocab = cache.model.config.vocab_size
    ids = [(7 * i + 11) % vocab for i in range(context)]
    cache.reset()
    cache.feed(ids)

    def timed(tokens: list[int]) -> float:
        t = time.perf_counter()
        cache.step(tokens[0]) if len(tokens) == 1 else cache.verify(tokens)
        t = time.perf_counter() - t
        cache.crop(context)
        return t

    timed(ids[:1]), timed(ids[:3])  # warm up
    ratios: dict[int, list[float]] = {k: [] for k in sizes}
    start = time.perf_counter()
    while len(ratios[sizes[0]]) < 3 or (time.perf_counter() - start < budget and len(ratios[sizes[0]]) < 25):
        for k in sizes:
            step = timed(ids[:1])
            ratios[k].append(timed(ids[: k + 1]) / step)
    cache.reset()
    at = {0: 1.0, **{k: statistics.median(r) for k, r in ratios.items()}}
    known = sorted(at)
    costs = []
    for k in range(max(sizes) + 1):  # linear between measured sizes
        lo = max(x for x in known if x <= k)
        hi = min(x for x in known if x >= k)
        costs.append(max(costs[-1:] + [at[lo] if lo == hi else at[lo] + (at[hi] - at[lo]) * (k - lo) / (hi - lo)]))
    return costs


def _linear(price: float) -> list[float]:
    return [1.0 + price * k for k in range(DEPTH + 1)]


def speculation_for(cache) -> Speculation | None:
    """The speculation state for a model whose cache runs llm42's own step with growing buffers (the CPU); None
    elsewhere. Costs start from those learned on an earlier start on this machine and model shape (else ASSUMED per
    drafted token) and are learned as the chat verifies; nothing is measured up front."""
    if cache.decode is not Decode.STEP:
        return None
    return Speculation.learning(_valid(remembered(cache.model, KEY)), keep=keeper(cache.model, KEY))


def _valid(kept) -> dict | None:
    """What was kept, if it reads as learned costs (a hand-edited or foreign file: None, start afresh)."""
    try:
        price, own = float(kept["price"]), {int(k): float(c) for k, c in kept.get("own", {}).items()}
    except (TypeError, KeyError, ValueError, AttributeError):
        return None
    if not 0 <= price < 10 or not all(1 <= k <= DEPTH and 1 <= c < 100 for k, c in own.items()):
        return None
    return {"price": price, "own": own}
