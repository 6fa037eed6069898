"""How this machine runs each forward pass: oneDNN on or off for the pass's size (as gen/tuning.py measured) and,
on the CPU, how many threads (cpu/threads.py's chooser: the chosen count for a prompt or a verify pass, a trial's
for a step, each step timed for it). The prompt cache asks around every pass; the pacer holds nothing of it."""

from __future__ import annotations

import contextlib
import time

import torch

from ..cpu.threads import ThreadChooser
from .tuning import Kernels, keeper, remembered

KEY = "threads|1"  # what trials chose on a quiet machine, kept per machine and model shape: {"quiet": n}


class Pacer:
    def __init__(self, kernels: Kernels | None = None, cpu: bool = True, model=None):
        """`model`: what the thread choice of a quiet machine is kept for (None: nothing kept)."""
        self.kernels = kernels or Kernels()
        self.threads = None
        if cpu:
            kept, keep = (remembered(model, KEY), keeper(model, KEY)) if model is not None else (None, None)
            self.threads = ThreadChooser(torch.get_num_threads(), kept, keep)

    def look(self) -> None:
        """Before a reply: the cores other processes leave free, before the prefill runs on them."""
        if self.threads is not None:
            self.threads.look()

    def tokens(self, tokens: int) -> None:
        """Before a pass over `tokens` new tokens at once: a prompt, or a verify pass of drafted tokens (one token: a
        step the slow way). Several run on the chosen thread count, never a trial's: a trial times plain steps only,
        and with speculation most passes are verifies, so a trial of one thread spanned many of them, each at about
        half speed."""
        self.kernels.use(tokens)
        if self.threads is not None and tokens > 1:
            self.threads.settle()

    @contextlib.contextmanager
    def step(self):
        """Around one decode step: on the thread count the chooser wants now, and timed for it."""
        self.kernels.use(1)
        if self.threads is None:
            yield
            return
        self.threads.threads()
        start = time.perf_counter()
        yield
        self.threads.record(time.perf_counter() - start)
