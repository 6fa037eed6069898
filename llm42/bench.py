"""`python -m llm42.bench`: load time, TTFT, decode speed and peak memory on the full 42dot shape.

Each configuration runs in a fresh process, one after another (two heavy processes on a small CPU
would only measure each other). The model is random-weight with the exact 42dot config: speed does
not depend on weight values. Results are printed as a table, written as JSON and, with matplotlib
installed, drawn as a bar chart."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

CACHE = Path(os.environ.get("LLM42_BENCH_CACHE", Path.home() / ".cache" / "llm42"))
CONFIGS = {
    "hf-fp32": "model.generate + TextIteratorStreamer, fp32 (what most scripts do)",
    "hf-bf16": "model.generate + TextIteratorStreamer, bf16",
    "llm42": "llm42 default: bf16, in-place KV cache, per-phase kernels, prompt cache",
    "llm42-int8": "llm42 --quantize int8 (saved quantized model)",
    "llm42-int4": "llm42 --quantize int4 (saved quantized model)",
    "llama.cpp": "llama.cpp through llama_cpp (only when installed and a GGUF is given)",
}
BASELINE = "hf-fp32"


def bench_model() -> Path:
    """The full-size random 42dot model in bf16, built once (about 2.9 GB on disk)."""
    import torch

    from .benchmodel import FULL_42DOT, build_42dot

    path = CACHE / "bench-42dot-1.3b"
    if not (path / "config.json").is_file():
        print(f"building the random 42dot-shaped model in {path} (once)", file=sys.stderr)
        tmp = path.with_name(path.name + ".partial")
        build_42dot(tmp, FULL_42DOT, dtype=torch.bfloat16)
        tmp.rename(path)
    return path


def quantized_model(kind: str) -> Path:
    """The bench model quantized and saved once, as `--save-quantized` would."""
    path = CACHE / f"bench-42dot-1.3b-{kind}"
    if not (path / "llm42_quant.json").is_file():
        print(f"quantizing the bench model to {kind} in {path} (once)", file=sys.stderr)
        code = ("import sys; from transformers import AutoTokenizer; from llm42.quantize import *; "
                "m = quantize_checkpoint(sys.argv[1], sys.argv[2]); "
                "save_quantized(m, AutoTokenizer.from_pretrained(sys.argv[1]), sys.argv[3])")
        subprocess.run([sys.executable, "-c", code, str(bench_model()), kind, str(path)], check=True)
    return path


def prompt_ids(tokenizer, n: int, salt: int = 0) -> list[int]:
    """n real token ids of mixed Korean/English text (deterministic)."""
    from .benchmodel import CORPUS

    ids = tokenizer.encode(" ".join(CORPUS[salt % len(CORPUS):] + CORPUS), add_special_tokens=False)
    while len(ids) < n:
        ids = ids + ids
    return ids[:n]


# --- workers: one configuration, in this process --------------------------------------------


def run_hf(dtype_name: str, model_dir: Path, new_tokens: int) -> dict:
    """The usual script: generate() in a thread, text from a TextIteratorStreamer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    load = time.perf_counter() - start

    class Timed(TextIteratorStreamer):
        def put(self, value):
            if not self.next_tokens_are_prompt:
                self.times.append(time.perf_counter())
            super().put(value)

    def reply(ids: list[int], n: int) -> tuple[float, float]:
        streamer = Timed(tok, skip_prompt=True)
        streamer.times = []
        kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=True, temperature=0.5, top_p=0.95, top_k=20,
                  repetition_penalty=1.2, streamer=streamer, pad_token_id=tok.eos_token_id)
        t0 = time.perf_counter()
        x = torch.tensor([ids])
        thread = threading.Thread(target=model.generate, args=(x,), kwargs=kw | {"attention_mask": torch.ones_like(x)})
        thread.start()
        for _ in streamer:
            pass
        thread.join()
        t = streamer.times
        return t[0] - t0, (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0

    ttft200, decode = reply(prompt_ids(tok, 200), new_tokens)
    ttft1024, _ = reply(prompt_ids(tok, 1024, 1), 1)
    history = prompt_ids(tok, 1000, 2)  # a script re-runs generate on the whole history for each turn
    follow, _ = reply(history + prompt_ids(tok, 20, 3), 1)
    return dict(load_s=load, ttft200_s=ttft200, ttft1024_s=ttft1024, decode_tps=decode, followup_ttft_s=follow)


def run_llm42(model_dir: Path, new_tokens: int) -> dict:
    import torch

    from .generate import PromptCache, generate_steps
    from .kernels import tune
    from .loader import context_window, load_model, locate
    from .settings import SamplingSettings

    torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    start = time.perf_counter()
    src = locate(str(model_dir))
    model, tok = load_model(src, "cpu", torch.bfloat16)
    kernels = tune(model)
    load = time.perf_counter() - start
    window = context_window(model.config)
    s = SamplingSettings(max_new_tokens=new_tokens, seed=0)

    def reply(cache: PromptCache, ids: list[int], n: int) -> tuple[float, float, list[int]]:
        settings = SamplingSettings(max_new_tokens=n, seed=0)
        t0 = time.perf_counter()
        times, out = [], []
        for step in generate_steps(cache, ids, settings, set(), torch.Generator().manual_seed(0)):
            times.append(time.perf_counter())
            out.append(step.token)
        tps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        return times[0] - t0, tps, out

    ttft200, decode, _ = reply(PromptCache(model, window, kernels), prompt_ids(tok, 200), s.max_new_tokens)
    ttft1024, _, _ = reply(PromptCache(model, window, kernels), prompt_ids(tok, 1024, 1), 1)
    cache = PromptCache(model, window, kernels)  # the chat keeps this cache across turns
    history = prompt_ids(tok, 1000, 2)
    _, _, answer = reply(cache, history[:-40], 40)  # turn 1: its reply is part of the history
    history = history[:-40] + answer
    follow, _, _ = reply(cache, history + prompt_ids(tok, 20, 3), 1)
    return dict(load_s=load, ttft200_s=ttft200, ttft1024_s=ttft1024, decode_tps=decode, followup_ttft_s=follow,
                kernels=kernels.note)


def run_llama_cpp(gguf: str | None, new_tokens: int) -> dict:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return dict(skipped="llama_cpp is not installed")
    if not gguf:
        return dict(skipped="no --gguf file of the 42dot shape given")
    from llama_cpp import Llama

    start = time.perf_counter()
    llm = Llama(model_path=gguf, n_ctx=4096, n_threads=os.cpu_count(), verbose=False)
    load = time.perf_counter() - start

    def reply(ids: list[int], n: int) -> tuple[float, float]:
        llm.reset()
        t0, times = time.perf_counter(), []
        for _ in llm.generate(ids, temp=0.5, top_p=0.95, top_k=20, repeat_penalty=1.2):
            times.append(time.perf_counter())
            if len(times) == n:
                break
        return times[0] - t0, (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    base = [int(i) % 50000 + 100 for i in range(1024)]
    ttft200, decode = reply(base[:200], new_tokens)
    ttft1024, _ = reply(base, 1)
    return dict(load_s=load, ttft200_s=ttft200, ttft1024_s=ttft1024, decode_tps=decode, followup_ttft_s=None)


def worker(config: str, new_tokens: int, gguf: str | None) -> dict:
    if config.startswith("hf-"):
        result = run_hf(config[3:], bench_model(), new_tokens)
    elif config == "llm42":
        result = run_llm42(bench_model(), new_tokens)
    elif config.startswith("llm42-int"):
        result = run_llm42(quantized_model(config.split("-")[1]), new_tokens)
    else:
        result = run_llama_cpp(gguf, new_tokens)
    import torch

    from .stream import peak_memory_gb

    result["peak_rss_gb"] = peak_memory_gb(torch.device("cpu"))
    return result


# --- the runner -------------------------------------------------------------------------------


def measure(config: str, new_tokens: int, gguf: str | None) -> dict:
    if config.startswith("llm42-int"):
        quantized_model(config.split("-")[1])  # built outside the timed process
    cmd = [sys.executable, "-m", "llm42.bench", "--worker", config, "--new-tokens", str(new_tokens)]
    if gguf:
        cmd += ["--gguf", gguf]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return dict(skipped=f"failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: dict[str, dict]) -> str:
    base = results.get(BASELINE, {})
    head = f"{'config':<12} {'load s':>7} {'TTFT@200':>9} {'TTFT@1024':>10} {'decode tok/s':>13} {'x base':>7} {'follow-up TTFT':>15} {'peak RSS GB':>12}"
    lines = [head, "-" * len(head)]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for name, r in results.items():
        if "skipped" in r:
            lines.append(f"{name:<12} skipped: {r['skipped']}")
            continue
        ratio = r["decode_tps"] / base["decode_tps"] if base.get("decode_tps") else None
        lines.append(f"{name:<12} {r['load_s']:>7.1f} {r['ttft200_s']:>9.2f} {r['ttft1024_s']:>10.2f} "
                     f"{r['decode_tps']:>13.2f} {fmt(ratio, '>6.2f') + ('x' if ratio else ''):>7} "
                     f"{fmt(r.get('followup_ttft_s'), '>15.2f'):>15} {r['peak_rss_gb']:>12.2f}")
    return "\n".join(lines)


def chart(results: dict[str, dict], machine: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: v for k, v in results.items() if "skipped" not in v}
    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    panels = [("decode_tps", "decode tokens/s (higher is better)"), ("followup_ttft_s", "follow-up TTFT s, 1,000-token history"),
              ("peak_rss_gb", "peak RSS GB (lower is better)")]
    colors = ["#9aa0a6" if n.startswith("hf-") else "#1a73e8" for n in names]
    for ax, (key, title) in zip(axes, panels):
        vals = [rows[n].get(key) or 0 for n in names]
        bars = ax.barh(names, vals, color=colors)
        ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()
        ax.margins(x=0.25)
    fig.suptitle(f"llm42 benchmark: random-weight 42dot LLM-SFT 1.3B shape, {machine}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def machine_line() -> str:
    import torch

    from .kernels import cpu_name

    cpu = cpu_name()
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {threads} threads, torch {torch.__version__}"


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llm42.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, from: {', '.join(CONFIGS)}")
    p.add_argument("--new-tokens", type=int, default=128, help="tokens per decode measurement")
    p.add_argument("--json", default="runs/bench.json", help="where to write the results")
    p.add_argument("--chart", default=None, metavar="PNG", help="draw a bar chart (needs matplotlib)")
    p.add_argument("--gguf", default=None, help="a GGUF of the 42dot shape for the llama.cpp row")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = setup_arg_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.new_tokens, args.gguf)))
        return 0
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        print(f"llm42.bench: error: unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    bench_model()
    machine = machine_line()
    print(f"machine: {machine}", file=sys.stderr)
    results = {}
    for c in configs:
        print(f"measuring {c}: {CONFIGS[c]}", file=sys.stderr)
        results[c] = measure(c, args.new_tokens, args.gguf)
    print(table(results))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "new_tokens": args.new_tokens, "results": results}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    if args.chart:
        try:
            chart(results, machine, Path(args.chart))
            print(f"wrote {args.chart}", file=sys.stderr)
        except ImportError:
            print("llm42.bench: the chart needs matplotlib (pip install matplotlib)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
