"""`python -m llm42.bench`: load time, TTFT, decode speed and peak memory on the full 42dot shape.

Each configuration runs in a fresh process, one after another (two heavy processes on a small CPU
would only measure each other). The model is random-weight with the exact 42dot config: speed does
not depend on weight values. With --llama-cpp, llama.cpp runs the same model (GGUF f16, q8_0, q4_0)
with the same prompts and timing points, and each llm42 row is compared with llama.cpp at its width.
Results are printed as a table, written as JSON and, with matplotlib installed, drawn as a bar chart."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from .paths import cache_dir
from .timing import timed

CONFIGS = {
    "hf-fp32": "model.generate + TextIteratorStreamer, fp32 (what most scripts do)",
    "hf-bf16": "model.generate + TextIteratorStreamer, bf16",
    "llm42": "llm42 default: bf16, own decode step, prompt cache",
    "llm42-int8": "llm42 --quantize int8 (saved quantized model)",
    "llm42-int4": "llm42 --quantize int4 (saved quantized model)",
}
LLAMA_CPP = {"llama.cpp-f16": "llama.cpp, f16 GGUF", "llama.cpp-q8_0": "llama.cpp, q8_0 GGUF",
             "llama.cpp-q4_0": "llama.cpp, q4_0 GGUF"}
SAME_WIDTH = {"llm42": "llama.cpp-f16", "llm42-int8": "llama.cpp-q8_0", "llm42-int4": "llama.cpp-q4_0"}
BASELINE = "hf-fp32"
FIGURES = ("ttft200_s", "ttft1024_s", "decode_tps", "followup_ttft_s", "peak_gb")


def can_import(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def bench_model() -> Path:
    """The full-size random 42dot model in bf16, built once (about 2.9 GB on disk)."""
    import torch

    from .benchmodel import FULL_42DOT, build_42dot

    path = cache_dir() / "bench-42dot-1.3b"
    if not (path / "config.json").is_file():
        print(f"building the random 42dot-shaped model in {path} (once)", file=sys.stderr)
        tmp = path.with_name(path.name + ".partial")
        build_42dot(tmp, FULL_42DOT, dtype=torch.bfloat16)
        tmp.rename(path)
    return path


def quantized_model(kind: str) -> Path:
    """The bench model quantized and saved once, as `--save-quantized` would."""
    path = cache_dir() / f"bench-42dot-1.3b-{kind}"
    from .saved import FORMAT, QUANT_FILE

    marker = path / QUANT_FILE
    if not marker.is_file() or json.loads(marker.read_text()).get("format") != FORMAT:
        print(f"quantizing the bench model to {kind} in {path} (once)", file=sys.stderr)
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        code = ("import sys; from transformers import AutoTokenizer; from llm42.quantize import quantize_checkpoint; "
                "from llm42.saved import save_quantized; m = quantize_checkpoint(sys.argv[1], sys.argv[2]); "
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


def prompts(tokenizer) -> dict[str, list[int]]:
    """The same token ids for every configuration."""
    return {"200": prompt_ids(tokenizer, 200), "1024": prompt_ids(tokenizer, 1024, 1),
            "history": prompt_ids(tokenizer, 1000, 2), "follow": prompt_ids(tokenizer, 20, 3)}


# --- workers: one configuration, in this process --------------------------------------------


def run_hf(dtype_name: str, model_dir: Path, new_tokens: int, device: str) -> dict:
    """The usual script: generate() in a thread, text from a TextIteratorStreamer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map=device).eval()
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
        x = torch.tensor([ids], device=model.device)
        thread = threading.Thread(target=model.generate, args=(x,), kwargs=kw | {"attention_mask": torch.ones_like(x)})
        thread.start()
        for _ in streamer:
            pass
        thread.join()
        t = streamer.times
        return t[0] - t0, (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0

    p = prompts(tok)
    ttft200, decode = reply(p["200"], new_tokens)
    ttft1024, _ = reply(p["1024"], 1)
    follow, _ = reply(p["history"] + p["follow"], 1)  # a script re-runs generate on the whole history each turn
    return dict(load_s=load, ttft200_s=ttft200, ttft1024_s=ttft1024, decode_tps=decode, followup_ttft_s=follow)


def run_llm42(model_dir: Path, new_tokens: int, device: str, long_context: int = 0) -> dict:
    """llm42's own engine, as the chat opens it (device, dtype, kernels), without a UI."""
    import torch

    from .engine import open_engine
    from .generate import PromptCache, generate_steps
    from .settings import SamplingSettings

    start = time.perf_counter()
    engine, _, _ = open_engine(str(model_dir), device=device)
    load = time.perf_counter() - start
    tok = engine.tokenizer

    def reply(cache: PromptCache, ids: list[int], n: int) -> tuple[float, float, list[int]]:
        steps = generate_steps(cache, ids, SamplingSettings(max_new_tokens=n, seed=0), set(),
                               torch.Generator().manual_seed(0))
        return timed((step.token for step in steps), n)

    p = prompts(tok)
    cache = engine.cache
    ttft200, decode, _ = reply(cache, p["200"], new_tokens)
    cache.reset()
    ttft1024, _, _ = reply(cache, p["1024"], 1)
    cache.reset()
    history = p["history"]  # the chat keeps the cache across turns
    _, _, answer = reply(cache, history[:-40], 40)  # turn 1: its reply is part of the history
    follow, _, _ = reply(cache, history[:-40] + answer + p["follow"], 1)
    out = dict(load_s=load, ttft200_s=ttft200, ttft1024_s=ttft1024, decode_tps=decode, followup_ttft_s=follow,
               kernels=engine.kernels.note if engine.kernels else "", decode_path=engine.cache.path)
    if long_context:  # decode with a long context in the cache: attention reads it all every step
        from .stream import peak_memory_gb

        out["peak_gb"] = peak_memory_gb(torch.device(device if device.startswith("cuda") else "cpu"))  # before it
        cache.reset()
        _, out["decode_tps_long"], _ = reply(cache, prompt_ids(tok, long_context - new_tokens, 4), new_tokens)
        out["long_context"] = long_context
    return out


def run_llama_cpp(width: str, new_tokens: int) -> dict:
    from transformers import AutoTokenizer

    from .device import cpu_threads
    from .llamacpp import gguf_of, run

    model = bench_model()
    return run(gguf_of(model, width), prompts(AutoTokenizer.from_pretrained(model)), new_tokens, cpu_threads())


def worker(config: str, new_tokens: int, device: str, long_context: int = 0) -> dict:
    if config.startswith("hf-"):
        result = run_hf(config[3:], bench_model(), new_tokens, device)
    elif config == "llm42":
        result = run_llm42(bench_model(), new_tokens, device, long_context)
    elif config.startswith("llm42-int"):
        result = run_llm42(quantized_model(config.split("-")[1]), new_tokens, device, long_context)
    else:
        result = run_llama_cpp(config.split("-", 1)[1], new_tokens)
    import torch

    from .stream import peak_memory_gb

    result.setdefault("peak_gb", peak_memory_gb(torch.device(device if device.startswith("cuda") else "cpu")))
    return result


# --- the runner -------------------------------------------------------------------------------


def spinners(n: int) -> list[subprocess.Popen]:
    """n processes that each keep a core busy, as a browser or an indexer would beside the chat."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def measure(config: str, new_tokens: int, device: str, long_context: int = 0, busy: int = 0) -> dict:
    if config.startswith("llm42-int"):
        quantized_model(config.split("-")[1])  # built outside the timed process
    if config.startswith("llama.cpp"):  # written and quantized outside the timed process, and outside this one
        code = "import sys; from pathlib import Path; from llm42.llamacpp import gguf_of; gguf_of(Path(sys.argv[1]), sys.argv[2])"
        subprocess.run([sys.executable, "-c", code, str(bench_model()), config.split("-", 1)[1]], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cmd = [sys.executable, "-m", "llm42.bench", "--worker", config, "--new-tokens", str(new_tokens), "--device", device,
           "--long-context", str(long_context)]
    spinning = spinners(busy)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        for p in spinning:
            p.kill()
            p.wait()
    if out.returncode != 0:
        return dict(skipped=f"failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ratios(results: dict[str, dict]) -> dict[str, dict]:
    """Each llm42 row divided by llama.cpp at the same weight width: decode speed (above 1 is better for llm42),
    TTFT@1024 and peak memory (below 1 is better)."""
    out = {}
    for mine, theirs in SAME_WIDTH.items():
        a, b = results.get(mine, {}), results.get(theirs, {})
        if "decode_tps" in a and "decode_tps" in b:
            out[mine] = {"vs": theirs, "decode": a["decode_tps"] / b["decode_tps"],
                         "ttft1024": a["ttft1024_s"] / b["ttft1024_s"], "peak": a["peak_gb"] / b["peak_gb"]}
    return out


def table(results: dict[str, dict], memory: str = "peak RSS GB") -> str:
    base = results.get(BASELINE, {})
    rel = ratios(results)
    head = (f"{'config':<15} {'load s':>7} {'TTFT@200':>9} {'TTFT@1024':>10} {'decode tok/s':>13} {'x base':>7} "
            f"{'follow-up TTFT':>15} {memory:>12} {'vs llama.cpp (decode, TTFT@1024)':>34}")
    lines = [head, "-" * len(head)]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for name, r in results.items():
        if "skipped" in r:
            lines.append(f"{name:<15} skipped: {r['skipped']}")
            continue
        ratio = r["decode_tps"] / base["decode_tps"] if base.get("decode_tps") else None
        vs = rel.get(name)
        against = f"{vs['decode']:.2f}x, {vs['ttft1024']:.2f}x" if vs else ""
        lines.append(f"{name:<15} {r['load_s']:>7.1f} {r['ttft200_s']:>9.2f} {r['ttft1024_s']:>10.2f} "
                     f"{r['decode_tps']:>13.2f} {fmt(ratio, '>6.2f') + ('x' if ratio else ''):>7} "
                     f"{fmt(r.get('followup_ttft_s'), '>15.2f'):>15} {r['peak_gb']:>12.2f} {against:>34}")
    return "\n".join(lines)


def chart(results: dict[str, dict], machine: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: v for k, v in results.items() if "skipped" not in v}
    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.45 * len(names) + 2.2))
    panels = [("decode_tps", "decode tokens/s (higher is better)"),
              ("ttft1024_s", "TTFT s, 1,024-token prompt (lower is better)"),
              ("peak_gb", "peak memory GB (lower is better)")]
    colors = ["#9aa0a6" if n.startswith("hf-") else "#e37400" if n.startswith("llama.cpp") else "#1a73e8" for n in names]
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


def machine_line(device: str) -> str:
    import torch

    from .device import cpu_threads
    from .device import cpu_name

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    from . import native

    return (f"{cpu_name()}, {cpu_threads()} threads, torch {torch.__version__} "
            f"(kernels: PyTorch {torch.backends.cpu.get_cpu_capability()}, llm42 {native.target()})")


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llm42.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default=None, help=f"comma-separated, from: {', '.join([*CONFIGS, *LLAMA_CPP])}")
    p.add_argument("--llama-cpp", action="store_true",
                   help="add llama.cpp at f16, q8_0 and q4_0 (needs llama-cpp-python; see README)")
    p.add_argument("--device", default="cpu", help="cpu, or cuda: llm42 and the transformers baseline on the GPU")
    p.add_argument("--new-tokens", type=int, default=128, help="tokens per decode measurement")
    p.add_argument("--long-context", type=int, default=0, metavar="N",
                   help="also measure llm42's decode speed with N tokens of context (e.g. 4000)")
    p.add_argument("--busy", type=int, default=0, metavar="N",
                   help="also measure each configuration with N processes spinning beside it (a busy laptop)")
    p.add_argument("--json", default="runs/bench.json", help="where to write the results")
    p.add_argument("--chart", default=None, metavar="PNG", help="draw a bar chart (needs matplotlib)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = setup_arg_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.new_tokens, args.device, args.long_context)))
        return 0
    if args.chart and not can_import("matplotlib"):  # said now, not after the measuring
        print("llm42.bench: error: --chart needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    if args.llama_cpp and not can_import("llama_cpp"):
        print("llm42.bench: error: --llama-cpp needs llama-cpp-python (see README: Speed)", file=sys.stderr)
        return 2
    cuda = args.device.startswith("cuda")
    import torch

    if cuda and not torch.cuda.is_available():
        print(f"llm42.bench: error: --device {args.device}, but this PyTorch sees no CUDA GPU", file=sys.stderr)
        return 2
    default = ["hf-bf16", "llm42"] if cuda else [*CONFIGS, *(LLAMA_CPP if args.llama_cpp else [])]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()] if args.configs else default
    unknown = [c for c in configs if c not in {**CONFIGS, **LLAMA_CPP}]
    if unknown:
        print(f"llm42.bench: error: unknown config {unknown[0]!r}; choose from {', '.join([*CONFIGS, *LLAMA_CPP])}",
              file=sys.stderr)
        return 2
    bench_model()
    machine = machine_line(args.device)
    print(f"machine: {machine}", file=sys.stderr)
    results = {}
    for c in configs:
        print(f"measuring {c}: {CONFIGS.get(c) or LLAMA_CPP[c]}", file=sys.stderr)
        results[c] = measure(c, args.new_tokens, args.device, args.long_context)
        if args.busy:
            results[f"{c} busy{args.busy}"] = measure(c, args.new_tokens, args.device, args.long_context, args.busy)
    print(table(results, "peak GPU GB" if cuda else "peak RSS GB"))
    for name, r in results.items():
        if "decode_tps_long" in r:
            print(f"{name}: decode {r['decode_tps_long']:.2f} tokens/s with {r['long_context']} tokens of context, "
                  f"{r['decode_tps_long'] / r['decode_tps']:.2f}x its speed at 200")
    for name, r in results.items():
        quiet = results.get(name.rsplit(" busy", 1)[0], {})
        if " busy" in name and r.get("decode_tps") and quiet.get("decode_tps"):
            print(f"{name}: decode {r['decode_tps']:.2f} tokens/s, {r['decode_tps'] / quiet['decode_tps']:.2f}x quiet")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "device": args.device, "new_tokens": args.new_tokens,
                               "results": results, "vs_llama_cpp": ratios(results)}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    if args.chart:
        chart(results, machine, Path(args.chart))
        print(f"wrote {args.chart}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
