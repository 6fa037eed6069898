"""A long chat, driven through the real CLI past its context window: does it stay fast?

    python tools/soak.py --model PATH [--turns 300] [--context N] [--max-new-tokens 24] [--json out.json]

Every reply's figures come from the transcript the chat wrote (time to first token, decode tokens/s, prompt
tokens, tokens reused from the cache, turns left out, peak memory). Printed as a JSON report; the exit
status is non-zero when a target is missed: after the window is full, at most one turn in ten re-reads its
prompt from scratch; the median time to first token stays under --max-median-ttft; peak memory does not grow
over the last 100 turns (or the last third, in a short run); every turn is in the transcript."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOPICS = [
    "the sea",
    "a lighthouse",
    "bread",
    "a dragon",
    "the moon",
    "tea",
    "a mountain",
    "rain",
    "a library",
    "a bicycle",
    "winter",
    "a garden",
    "the city at night",
    "an old map",
    "a violin",
]


def messages(n: int) -> list[str]:
    """n short, different questions, as a person asks in a long chat."""
    return [f"Turn {i}: tell me one short fact about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


def run(model: str, turns: int, context: int | None, max_new: int, extra: list[str]) -> tuple[list[dict], float]:
    with tempfile.TemporaryDirectory() as history:
        cmd = [
            sys.executable,
            str(ROOT / "example_cli.py"),
            "--model-path",
            model,
            "--max-new-tokens",
            str(max_new),
            "--seed",
            "0",
            "--history-dir",
            history,
            *(["--context", str(context)] if context else []),
            *extra,
        ]
        start = time.perf_counter()
        done = subprocess.run(
            cmd,
            input="".join(m + "\n" for m in messages(turns)),
            capture_output=True,
            text=True,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"the chat failed ({done.returncode}): {done.stderr[-2000:]}")
        (path,) = Path(history).glob("*.jsonl")
        events = [json.loads(line) for line in path.read_text().splitlines()]
    return [e for e in events if e["event"] == "assistant"], seconds


def report(replies: list[dict], turns: int, seconds: float, max_median_ttft: float) -> dict:
    stats = [r["stats"] for r in replies]
    full = next((i for i, s in enumerate(stats) if s["dropped_turns"] > 0), None)  # the first turn that had to drop
    after = stats[full:] if full is not None else []
    # a re-read: the prompt was prefilled (nearly) from scratch rather than extending the cached one
    rereads = [i for i, s in enumerate(after) if s["reused_prompt_tokens"] < s["prompt_tokens"] // 2]
    tail = stats[-min(100, max(turns // 3, 1)) :]
    growth = tail[-1]["peak_memory_gb"] - tail[0]["peak_memory_gb"]
    ttft = [s["ttft_s"] for s in stats]
    out = {
        "turns_sent": turns,
        "turns_in_transcript": len(replies),
        "seconds": round(seconds, 1),
        "window_full_at_turn": full,
        "turns_after_full": len(after),
        "full_rereads_after_full": len(rereads),
        "median_ttft_s": round(statistics.median(ttft), 3),
        "max_ttft_s": round(max(ttft), 3),
        "decode_tps_first": stats[0]["decode_tokens_per_s"],
        "decode_tps_last": stats[-1]["decode_tokens_per_s"],
        "peak_memory_gb_last": round(stats[-1]["peak_memory_gb"], 3),
        "peak_memory_growth_gb_over_tail": round(growth, 3),
        "per_turn": [
            {
                k: s[k]
                for k in (
                    "prompt_tokens",
                    "reused_prompt_tokens",
                    "dropped_turns",
                    "ttft_s",
                    "decode_tokens_per_s",
                    "peak_memory_gb",
                )
            }
            for s in stats
        ],
    }
    out["ok"] = (
        len(replies) == turns
        and len(rereads) * 10 <= max(len(after), 1) + 9
        and out["median_ttft_s"] <= max_median_ttft
        and growth <= 0.02 * tail[0]["peak_memory_gb"]
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--turns", type=int, default=300)
    p.add_argument("--context", type=int, default=None, help="a smaller window, to reach it sooner")
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--max-median-ttft", type=float, default=1.0)
    p.add_argument("--json", default=None, help="also write the report here")
    p.add_argument("extra", nargs="*", help="more CLI flags, after --")
    a = p.parse_args(argv)
    replies, seconds = run(a.model, a.turns, a.context, a.max_new_tokens, a.extra)
    out = report(replies, a.turns, seconds, a.max_median_ttft)
    summary = {k: v for k, v in out.items() if k != "per_turn"}
    print(json.dumps(summary, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
