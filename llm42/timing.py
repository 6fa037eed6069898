"""The benchmark's one timing loop, shared by llm42's and llama.cpp's rows."""

from __future__ import annotations

import time


def timed(tokens, n: int) -> tuple[float, float, list[int]]:
    """Up to `n` tokens from a generator started now: (time to the first, decode tokens/s from the first to the
    last, the tokens). llm42 and llama.cpp are timed by this one loop."""
    t0, times, out = time.perf_counter(), [], []
    for token in tokens:
        times.append(time.perf_counter())
        out.append(token)
        if len(times) == n:
            break
    tps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return times[0] - t0, tps, out
