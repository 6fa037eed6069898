"""How many threads a CPU decode step runs on, chosen from what the steps themselves measure.

On a quiet machine every core helps. On a busy one (a browser, an IDE, an indexer on one of two cores), each of
a step's parallel regions waits for the thread the OS has descheduled, so one thread beats two. Before a reply the
chooser looks at how much CPU time other processes took on this process's cores since it last looked (the OS's
counters, less this process's own: the model's loading for a first reply, the user's typing for a later one) and
leaves the cores they kept busy. Then the steps decide: after a few steps it times the other thread counts for a
few steps each, keeps the fastest, and tries again sooner when steps slow down; while trials keep confirming the
choice they grow rarer (a quiet machine pays about 1 % of its steps for them). What the trials chose while the
counters said the machine was quiet is kept per machine and model shape: a later start on a quiet machine begins on
it with no trial, its first steps' time the mark that a slowdown (a process taking a core) is measured against. Each
trial of one thread costs two steps at about half speed, and a reply's first 128 tokens held three (the 42dot
shape's int4 steps: ~3 % of a one-shot run's decode). PyTorch's set_num_threads sets the OpenMP runtime that llm42's
own kernels share."""

from __future__ import annotations

import math
import os
import time

import torch

TRIAL = 2  # steps per option in a trial; the first after a switch is not counted (the pool resizes)
EARLY, FIRST, LONGEST = 4, 32, 256  # steps before the first trial of a reply's start, between trials at first, at most
BUSY = 0.5  # a core kept busy this much of the time by other processes counts as taken
LOOK = 0.2  # seconds: a shorter interval since the last look says too little (the counters tick every 10 ms; a
# saved int4 model loads in 0.46 s, and 0.5 here skipped the first look of a one-shot run)
QUIET = 0.25  # other processes' load (cores) under which the machine counts as quiet, for what was kept


def _cpu_seconds() -> tuple[float, float, float] | None:
    """(now, busy CPU seconds of this process's cores, CPU seconds of this process and its finished children)."""
    try:
        import psutil

        cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        busy = sum(
            c.user + c.nice + c.system + getattr(c, "irq", 0) + getattr(c, "softirq", 0)
            for i, c in enumerate(psutil.cpu_times(percpu=True))
            if cores is None or i in cores
        )
        me = psutil.Process().cpu_times()
        return time.monotonic(), busy, me.user + me.system + me.children_user + me.children_system
    except (ImportError, OSError, AttributeError):
        return None


STARTED = _cpu_seconds()  # when this module was imported: as the model began to load, so a first look spans it


class ThreadChooser:
    def __init__(self, most: int, kept: dict | None = None, keep=None):
        """`kept`: {"quiet": n}, what trials on a quiet machine chose for this model shape before; `keep` keeps it."""
        self.options = sorted({1, max(1, most // 2), most})
        self.quiet = kept.get("quiet") if isinstance(kept, dict) and kept.get("quiet") in self.options else None
        self.keep = keep
        self.trusted = False  # started on the kept count, no trial: the first steps set the floor
        self.current = most
        self.period, self.since = FIRST, FIRST - EARLY
        self.trial: list[int] = []  # options still to time in this trial, the one being timed first
        self.samples: list[float] = []
        self.times: dict[int, float] = {}  # option -> its mean step time in the latest trial
        self.recent: float | None = None  # the current option's step time, smoothed
        self.floor: float | None = None  # what the trial measured for it
        self.mark = STARTED  # the counters at the last look
        self.others: float | None = None  # cores the other processes kept busy, at the last look

    def look(self) -> int:
        """Before a reply: start on the cores the other processes left free since the last look (a short interval
        changes nothing), with a trial a few steps in; the count to start on."""
        now = _cpu_seconds()
        if now is None or self.mark is None or now[0] - self.mark[0] < LOOK or len(self.options) == 1:
            return self.current
        wall, busy, mine = (b - a for a, b in zip(self.mark, now))
        self.mark, self.others = now, max(0.0, (busy - mine) / wall)
        free = max(1, self.options[-1] - math.floor(self.others + 1 - BUSY))
        start = max(o for o in self.options if o <= free)
        if self.others < QUIET and self.quiet is not None and self.quiet <= start:
            if self.quiet != self.current or self.floor is None:  # as trials on this quiet machine chose before
                self.current, self.floor, self.recent, self.trial = self.quiet, None, None, []
                self.since, self.period, self.trusted = 0, LONGEST, True
        elif start != self.current or self.floor is None:
            self.current, self.floor, self.recent, self.trial = start, None, None, []
            self.since, self.period, self.trusted = FIRST - EARLY, FIRST, False  # the steps confirm it soon
        return self.current

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
        if self.trusted and self.floor is None and self.since > EARLY:
            self.floor = self.recent  # the kept count's own pace: a step 30 % slower than it starts a trial
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
        self.floor, self.recent, self.trusted = self.times[best], None, False
        if self.others is not None and self.others < QUIET and best != self.quiet and self.keep is not None:
            self.quiet = best  # what a quiet machine runs best on, for the next start
            self.keep({"quiet": best})
