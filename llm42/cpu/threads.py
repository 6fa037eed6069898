"""How many threads a CPU decode step runs on, chosen from what the steps themselves measure.

On a quiet machine every core helps. On a busy one (a browser, an IDE, an indexer on one of two cores), each of
a step's ~170 parallel regions waits for the thread the OS has descheduled: two threads then ran transformers'
SmolLM2 step in 305 ms where one took 68-113 ms. So the chooser tries the other thread counts now and then for a
few steps, keeps the fastest, and tries again sooner when steps slow down; while trials keep confirming the
choice they grow rarer (a quiet machine pays about 1 % of its steps for them). PyTorch's set_num_threads sets the
OpenMP runtime that llm42's own kernels share."""

from __future__ import annotations

import torch

TRIAL = 2  # steps per option in a trial; the first after a switch is not counted (the pool resizes)
FIRST, LONGEST = 32, 256  # steps between trials: at first, and at most (sooner when steps slow down)


class ThreadChooser:
    def __init__(self, most: int):
        self.options = sorted({1, max(1, most // 2), most})
        self.current = most
        self.period, self.since = FIRST, 0
        self.trial: list[int] = []  # options still to time in this trial, the one being timed first
        self.samples: list[float] = []
        self.times: dict[int, float] = {}  # option -> its mean step time in the latest trial
        self.recent: float | None = None  # the current option's step time, smoothed
        self.floor: float | None = None  # what the trial measured for it

    def threads(self) -> int:
        """Set and return the thread count for the next step."""
        n = self.trial[0] if self.trial else self.current
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
        return n

    def settle(self) -> int:
        """Set and return the chosen count, outside any trial: for a prefill, which must not run on a trial's
        thread count (a reply can end mid-trial)."""
        if torch.get_num_threads() != self.current:
            torch.set_num_threads(self.current)
        return self.current

    def record(self, seconds: float) -> None:
        """The step just run took `seconds`."""
        if self.trial:
            self.samples.append(seconds)
            if len(self.samples) == TRIAL:
                self.times[self.trial.pop(0)] = sum(self.samples[1:]) / (TRIAL - 1)
                self.samples = []
                if not self.trial:
                    self._decide()
            return
        self.recent = seconds if self.recent is None else 0.8 * self.recent + 0.2 * seconds
        self.since += 1
        slower = self.floor is not None and self.recent > 1.3 * self.floor
        if len(self.options) > 1 and (self.since >= self.period or slower):
            self.since = 0
            self.trial = [o for o in self.options if o != self.current] + [self.current]  # current again, now

    def _decide(self) -> None:
        best = min(self.times, key=self.times.get)
        if best == self.current:
            self.period = min(self.period * 2, LONGEST)
        else:
            self.current, self.period = best, FIRST
        self.floor, self.recent = self.times[best], None
