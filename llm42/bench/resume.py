"""`python -m llm42.bench --resume`: picking a chat up again, as a user meets it, on the 42dot shape (bf16 and int4).

A piped chat over a file of ~3,000 tokens answers once; then, each measured from outside the process with its
own report: `--resume` of that chat with the KV kept on disk and without it (`LLM42_KV_CACHE_GB=0`), and a one-shot
`--file ... --prompt` over the same file. Then the store's own costs on the same shape: the size on disk, the first
write of the whole history and the append of one turn (written beside the chat, off the reply's path)."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ..paths import cache_dir
from .inputs import bench_model, prompt_ids, quantized_model
from .timing import from_outside

HISTORY_TOKENS = 3000


def one_run(model: Path, cache: Path, history: Path, lines: list[str], *args: str, gb: str = "4") -> dict:
    """A piped greedy run: its last --debug report, and the seconds to the first byte of its last reply seen from
    outside (the process started, loaded and prefilled)."""
    env = {**os.environ, "LLM42_CACHE": str(cache), "LLM42_KV_CACHE_GB": gb}
    cmd = [sys.executable, "-m", "llm42", "--model-path", str(model), "--history-dir", str(history), "--debug"]
    cmd += ["--max-new-tokens", "16", "--temperature", "0", *args]
    first, end, err, status = from_outside(cmd, env, "".join(line + "\n" for line in lines).encode())
    reports = [json.loads(m) for m in re.findall(r"^\{\n.*?^\}", err, re.S | re.M)]
    if status != 0 or not reports:
        raise RuntimeError(f"llm42 failed ({status}): {err.strip().splitlines()[-1:]}")
    return {**reports[-1], "first_byte_s": first, "total_s": end}


def store_costs(model: Path) -> dict:
    """Seconds for the first write of HISTORY_TOKENS positions of the model's KV, and for appending 100 more."""
    import torch
    from transformers import AutoConfig

    from ..gen.kvcache import KVCache
    from ..gen.kvstore import KVStore

    config = AutoConfig.from_pretrained(model)
    kv = KVCache(config, HISTORY_TOKENS + 100, torch.bfloat16, "cpu")
    kv.begin(HISTORY_TOKENS + 100)
    for t in (*kv.k, *kv.v):
        t.normal_()
    kv.commit()
    with tempfile.TemporaryDirectory(prefix="llm42-bench-kv-") as tmp:
        store = KVStore(Path(tmp), "bench", kv, 1 << 40)
        ids = list(range(HISTORY_TOKENS + 100))
        costs = {}
        for name, n in (("first_write_s", HISTORY_TOKENS), ("turn_write_s", HISTORY_TOKENS + 100)):
            start = time.perf_counter()
            store.save(ids[:n], _Prefix(kv, n))
            store.wait()
            costs[name] = time.perf_counter() - start
        costs["bytes"] = store.file.stat().st_size
    return costs


class _Prefix:
    """A KVCache seen as holding only its first n positions."""

    def __init__(self, kv, n: int):
        self.k, self.v, self.n = kv.k, kv.v, n


def measure(model: Path, kind: str) -> dict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    with tempfile.TemporaryDirectory(prefix="llm42-bench-resume-") as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"  # the KV files of this run only; the kernels and their choice are the user's own
        cache.mkdir()
        for name in ("native", "kernels.json", "quantized", "gguf"):
            if (cache_dir() / name).exists():
                (cache / name).symlink_to(cache_dir() / name)
        doc = tmp / "report.txt"
        doc.write_text(tokenizer.decode(prompt_ids(tokenizer, HISTORY_TOKENS, 4)))
        history = tmp / "history"
        first = one_run(model, cache, history, ["Summarize the report in one line."], "--file", str(doc))
        (path,) = history.glob("*.jsonl")
        chat = path.read_bytes()
        stored = sum(f.stat().st_size for f in (cache / "kv").rglob("*.kv"))
        resumed = one_run(model, cache, history, ["And in one word?"], "--resume", str(path))
        path.write_bytes(chat)
        cold = one_run(model, cache, history, ["And in one word?"], "--resume", str(path), gb="0")
        again = one_run(model, cache, tmp / "h2", [], "--file", str(doc), "--prompt", "Who wrote the report?")
        shutil.rmtree(cache / "kv", ignore_errors=True)
    return {"kind": kind, "first": first, "resumed": resumed, "cold": cold, "again": again, "stored_bytes": stored}


def main(args) -> int:
    kinds = [args.quantize] if args.quantize != "none" else ["bf16", "int4"]
    print(f"resuming a chat of ~{HISTORY_TOKENS} tokens, 42dot shape: {', '.join(kinds)}", file=sys.stderr)
    for kind in kinds:
        model = bench_model() if kind == "bf16" else quantized_model(kind)
        r = measure(model, kind)
        r["store"] = store_costs(bench_model())
        print(
            f"| {kind} | {r['cold']['prompt_tokens']} | {r['cold']['ttft_s']:.2f} s | {r['resumed']['ttft_s']:.2f} s "
            f"({r['resumed']['restored_prompt_tokens']} read, "
            f"{r['resumed']['prompt_tokens'] - r['resumed']['restored_prompt_tokens']} prefilled) | "
            f"{r['cold']['first_byte_s']:.1f} vs "
            f"{r['resumed']['first_byte_s']:.1f} s | {r['again']['ttft_s']:.2f} s vs {r['first']['ttft_s']:.2f} s | "
            f"{r['stored_bytes'] / 2**20:.0f} MB | {r['store']['first_write_s']:.2f} s / "
            f"{r['store']['turn_write_s'] * 1e3:.0f} ms |"
        )
    print(
        "columns: kind | history tokens | time to first token resumed without / with the stored KV | first reply "
        "byte from outside, without vs with | a second one-shot over the file vs the first | size on disk | "
        "first write of 3,000 tokens / one turn's append",
        file=sys.stderr,
    )
    return 0
