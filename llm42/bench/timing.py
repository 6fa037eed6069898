"""The benchmark's timing points, written once: every row (llm42, transformers, llama.cpp) supplies only a
`reply(ids, n, fresh)` that yields token ids, and is timed by the same loop at the same points."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

Reply = Callable[[list[int], int, bool], Iterator[int]]  # (prompt ids, tokens wanted, forget the cache first)


def timed(tokens: Iterator[int], n: int) -> tuple[float, float, list[int]]:
    """Up to `n` tokens from a generator started now: (time to the first, decode tokens/s from the first to the
    last, the tokens)."""
    t0, times, out = time.perf_counter(), [], []
    for token in tokens:
        times.append(time.perf_counter())
        out.append(token)
        if len(times) == n:
            break
    tps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return times[0] - t0, tps, out


def points(reply: Reply, prompts: dict[str, list[int]], new_tokens: int) -> dict:
    """TTFT for 200 and 1,024 prompt tokens, decode tokens/s (first to last token) after the 200, and the TTFT of
    a follow-up: a 1,000-token turn answered in 40 tokens, then 20 more tokens (a chat keeps its cache; a script
    that re-runs generate on the whole history does not)."""
    ttft200, decode, _ = timed(reply(prompts["200"], new_tokens, True), new_tokens)
    ttft1024, _, _ = timed(reply(prompts["1024"], 1, True), 1)
    turn = prompts["history"][:-40]
    _, _, answer = timed(reply(turn, 40, True), 40)
    follow, _, _ = timed(reply(turn + answer + prompts["follow"], 1, False), 1)
    return dict(ttft200_s=ttft200, ttft1024_s=ttft1024, decode_tps=decode, followup_ttft_s=follow)


def from_outside(cmd: list[str], env: dict, stdin: bytes = b"") -> tuple[float, float, str, int]:
    """Run a command as a script would: (seconds to the first byte of its stdout, to its exit, its stderr, its exit
    status); 0.0 for the first byte when it wrote nothing."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    p.stdin.write(stdin)
    p.stdin.close()
    first = p.stdout.read(1) and time.perf_counter() - start
    p.stdout.read()
    err = p.stderr.read().decode(errors="replace")
    p.wait()
    return first or 0.0, time.perf_counter() - start, err, p.returncode


def spinners(n: int) -> list[subprocess.Popen]:
    """n processes that each keep a core busy, as a browser or an indexer would beside the chat."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
