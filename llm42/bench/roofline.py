"""`python -m llm42.bench --kernels`: a roofline for this machine. Its read bandwidth (a plain streaming read in
llm42's own library, at one thread and at the decode's thread count), each weight product of the 42dot shape at each
width in GB/s and in % of that bandwidth (llm42's kernels and PyTorch's), and one decode step of the 42dot model split
into products, attention (with its KV write), glue (norms, rotary, residual adds, SiLU) and the Python between them.

A step reads every weight once, so it can go no faster than its weights' bytes over the bandwidth: every speed
claim in the README is read against these numbers."""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..cpu import native, widen
from ..cpu.flags import cpu_threads
from ..cpu.layers import Int4Linear, Int8Linear, Quantized
from .inputs import bench_model, prompt_ids, quantized_model

# the 42dot layer's products: (out, in, how many per layer)
SHAPES = {
    "2048x2048 (q, k, v, o)": (2048, 2048, 4),
    "5632x2048 (gate, up)": (5632, 2048, 2),
    "2048x5632 (down)": (2048, 5632, 1),
}
COPIES = 4  # at least this many layers' worth of weights cycled, so each product streams from memory as in a step
CYCLED_MB = 256  # and at least this much per shape: a Zen 5's 32 MB L3 held four layers of int4 q, k, v, o
ROUNDS = 5
READ_GB = 1  # the bandwidth probe's buffer, far larger than any last-level cache
STEPS = 24  # decode steps timed, plain and split, after 8 to warm up


def bandwidth(threads: int) -> float:
    """GB/s of a streaming read at `threads` threads: the best of several passes over READ_GB."""
    words = torch.ones((READ_GB << 30) // 8, dtype=torch.int64)  # written once: every page is real
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _read(words)
        best = min(_seconds(lambda: _read(words)) for _ in range(ROUNDS))
    finally:
        torch.set_num_threads(before)
    return words.nbytes / best / 1e9


def _read(words: torch.Tensor) -> None:
    """Stream `words` (int64, contiguous) through the CPU once, on the threads in force (kernels.c's llm42_read)."""
    out = torch.empty(1, dtype=torch.int64)
    native.library().llm42_read(words.data_ptr(), words.numel(), out.data_ptr())


def _seconds(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def _layer(width: str, out: int, inp: int) -> nn.Module:
    lin = nn.Linear(inp, out, bias=False, device="meta")
    lin.weight = nn.Parameter(torch.randn(out, inp, dtype=torch.bfloat16) * 0.02, requires_grad=False)
    return {"int8": Int8Linear.from_linear, "int4": Int4Linear.from_linear}.get(width, lambda x: x)(lin)


def weight_bytes(layer: nn.Module) -> int:
    """What one product reads of a layer: its weight, with scales where it is quantized."""
    if isinstance(layer, Quantized):
        return sum(t.nbytes for name, t in layer.export().items() if name != "bias")
    laid = getattr(layer, "panels", getattr(layer, "pairs", None))  # a bf16 weight in llm42's layout (cpu/widen, pairs)
    return (layer.weight if laid is None else laid).nbytes


def _kernels(width: str, layer: nn.Module) -> dict:
    """The products one layer can run for one row: llm42's and PyTorch's."""
    if width == "bf16":
        w = layer.weight
        out = {
            "PyTorch, oneDNN off": (lambda x: F.linear(x, w), False),
            "PyTorch, oneDNN on": (lambda x: F.linear(x, w), True),
        }
        if native.library() is not None:
            out["llm42"] = (native.kernel(lambda x: native.gemv_bf16(w, x), native.BF16, w), False)
        if widen.panel() == 16:  # the layout the chat packs bf16 weights in here (cpu/widen.PanelLinear)
            if not hasattr(layer, "panels"):
                layer.panels = widen.pack_bf16(w)
            panels = layer.panels
            out["llm42, panels"] = (native.kernel(lambda x: widen.gemm_bf16p(panels, x), native.BF16_PANELS, panels),
                                    False)  # fmt: skip
        return out
    if width == "int8":
        out = {"PyTorch": (layer.product(False), False)}
    else:
        packed, sz = layer.torch_packed()
        out = {"PyTorch": (lambda x: torch._weight_int4pack_mm_for_cpu(x, packed, layer.group, sz), False)}
    if native.library() is not None:
        out["llm42"] = (layer.product(True), False)
    return out


def _passes(fs: list, x: torch.Tensor, n: int) -> list[float]:
    """Seconds of ROUNDS passes over the products `fs` (after one to warm); llm42's (native.kernel) in one call, as a
    step runs them (llm42_products): called one by one, a 2048x2048 int4 product's ~40 us paid ~15 us of crossing."""
    marks = [getattr(f, "native", None) for f in fs]
    run = lambda: [f(x) for f in fs]
    if None not in marks:
        spec = torch.tensor([[kind, w.data_ptr(), 0 if s is None else s.data_ptr(), g] for kind, w, s, g in marks])
        y, lib = torch.empty(len(x), n, dtype=torch.bfloat16), native.library()
        run = lambda: lib.llm42_products(spec.data_ptr(), len(spec), x.data_ptr(), y.data_ptr(), len(x), n, x.shape[1])
    run()
    return [_seconds(run) for _ in range(ROUNDS)]


def products(width: str) -> dict:
    """{kernel: {shape: GB/s, "step mix": GB/s}} for one row at `width`, each shape's copies (COPIES layers' worth, and
    at least CYCLED_MB) cycled; the best of ROUNDS passes (what the kernel can do: another process only ever slows a
    pass). llm42's products run one after another in one call, as a step runs them (`_passes`)."""
    copies, layers = {}, {}
    for s, (o, i, n) in SHAPES.items():
        first = _layer(width, o, i)
        copies[s] = max(COPIES, math.ceil(CYCLED_MB * 1e6 / (n * weight_bytes(first))))
        layers[s] = [first] + [_layer(width, o, i) for _ in range(copies[s] * n - 1)]
    results: dict = {}
    for name in _kernels(width, layers[next(iter(SHAPES))][0]):
        seconds, read = {}, {}
        for shape, ls in layers.items():
            fs = [_kernels(width, layer)[name] for layer in ls]
            onednn = fs[0][1]
            x = torch.randn(1, ls[0].in_features, dtype=torch.bfloat16)
            before, torch.backends.mkldnn.enabled = torch.backends.mkldnn.enabled, onednn
            try:
                with torch.inference_mode():
                    rounds = _passes([f for f, _ in fs], x, ls[0].out_features)
            finally:
                torch.backends.mkldnn.enabled = before
            seconds[shape], read[shape] = min(rounds), sum(weight_bytes(layer) for layer in ls)
        per_layer = {s: seconds[s] / copies[s] for s in SHAPES}  # a step's mix: each shape as often as a layer has it
        results[name] = {s: read[s] / seconds[s] / 1e9 for s in SHAPES}
        results[name]["step mix"] = sum(read[s] / copies[s] for s in SHAPES) / sum(per_layer.values()) / 1e9
    return results


@contextlib.contextmanager
def _split(decoder, buckets: dict):
    """Time what a decode step calls, by kind, into `buckets` (seconds) while inside."""
    from ..gen import decode

    def timed(f, kind):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                buckets[kind] += time.perf_counter() - start

        return run

    saved_layers, saved_head = decoder.layers, decoder.head
    decoder.layers = [
        tuple(timed(p, "products") if callable(p) and not isinstance(p, torch.Tensor) else p for p in layer)
        for layer in decoder.layers
    ]
    decoder.head = timed(decoder.head, "products")
    patched = [(native, n, "glue") for n in ("rmsnorm_rows", "rope_rows_", "add_", "silu_mul_")]
    patched += [
        (native, "attend_rows", "attention"),
        (decode, "attend", "attention"),
        (decoder.kv, "write", "attention"),
    ]
    patched += [(decoder, "rmsnorm", "glue"), (decoder, "rotate", "glue")]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patched]
    for owner, name, kind in patched:
        setattr(owner, name, timed(getattr(owner, name), kind))
    try:
        yield
    finally:
        decoder.layers, decoder.head = saved_layers, saved_head
        for owner, name, f in originals:
            if owner in (decoder, decoder.kv):
                delattr(owner, name)  # the instance's own wrapper goes: the class's method shows again
            else:
                setattr(owner, name, f)


def step_split(model_dir: Path) -> dict:
    """One decode step of the model in `model_dir` as the chat opens it, after a 200-token prompt: its time plain,
    and split (products, attention, glue, the rest: Python between the calls) in a second run of the same steps."""
    from ..engine import open_engine
    from ..gen.decode import decode_layers
    from ..gen.generate import prefill
    from ..settings import ModelSettings

    engine, _, _ = open_engine(ModelSettings(path=str(model_dir), kv_cache_gb=0))
    cache, model = engine.cache, engine.model
    if cache.decoder is None:
        return dict(skipped=f"no llm42 decode step here ({cache.decode.value})")
    ids = prompt_ids(engine.tokenizer, 200)
    prefill(cache, ids)
    token = ids[-1]
    for _ in range(8):
        cache.step(token)
    cache.pace.threads = None  # every step on all threads: the chooser's trials of fewer would land in some of them
    torch.set_num_threads(cpu_threads())
    plain = statistics.median(_seconds(lambda: cache.step(token)) for _ in range(STEPS))
    # the split times the Python loop's calls (the reference path, which the one-call step replaces where every
    # product is llm42's): its plain time beside it
    one_call = cache.decoder.step_spec is not None
    cache.decoder.one_call = False
    loop = statistics.median(_seconds(lambda: cache.step(token)) for _ in range(STEPS))
    buckets: dict = defaultdict(float)
    with _split(cache.decoder, buckets):
        split = statistics.median(_seconds(lambda: cache.step(token)) for _ in range(STEPS))
        buckets.clear()  # one more pass, summed, for the split itself (medians do not add up)
        total = sum(_seconds(lambda: cache.step(token)) for _ in range(STEPS))
    parts = {k: buckets[k] / STEPS for k in ("products", "attention", "glue")}
    parts["Python, rest"] = max(0.0, total / STEPS - sum(parts.values()))
    read = sum(weight_bytes(layer) for layer in decode_layers(model))
    cache.decoder.one_call = True
    out = dict(
        step_ms=plain * 1e3,
        one_call=one_call,
        loop_step_ms=loop * 1e3,
        split_step_ms=split * 1e3,
        parts_ms={k: v * 1e3 for k, v in parts.items()},
        weights_gb=read / 1e9,
        products_gbs=read / parts["products"] / 1e9,
        kernels=engine.kernels.note if engine.kernels else "",
    )
    return out


def main(args) -> int:
    if native.library() is None:
        print("llm42.bench: error: --kernels needs llm42's C kernels (a C compiler; see --debug)", file=sys.stderr)
        return 2
    from .report import machine_line

    threads = cpu_threads()
    machine = machine_line("cpu")
    print(f"machine: {machine}", file=sys.stderr)
    print("measuring the read bandwidth", file=sys.stderr)
    bw = {1: bandwidth(1), threads: bandwidth(threads)}
    torch.set_num_threads(threads)
    widths = ("bf16", "int8", "int4")
    prods = {}
    for width in widths:
        print(f"measuring the {width} products", file=sys.stderr)
        prods[width] = products(width)
    steps = {}
    for width in widths:
        print(f"measuring one {width} decode step of the 42dot shape", file=sys.stderr)
        steps[width] = step_split(bench_model() if width == "bf16" else quantized_model(width))
    print(report(bw, threads, prods, steps))
    out = Path(args.json if args.json != "runs/bench.json" else "runs/kernels.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(machine=machine, bandwidth=bw, products=prods, steps=steps), indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def report(bw: dict, threads: int, prods: dict, steps: dict) -> str:
    """The three tables, in Markdown."""
    roof = bw[threads]
    lines = [
        f"read bandwidth: {bw[1]:.1f} GB/s at 1 thread, {roof:.1f} GB/s at {threads}",
        "",
        f"| width | kernel | {' | '.join(SHAPES)} | step mix | % of {roof:.0f} GB/s |",
        "| --- | --- |" + " ---: |" * (len(SHAPES) + 2),
    ]
    for width, kernels in prods.items():
        for name, r in kernels.items():
            cells = " | ".join(f"{r[s]:.1f}" for s in SHAPES)
            lines.append(f"| {width} | {name} | {cells} | {r['step mix']:.1f} | {100 * r['step mix'] / roof:.0f} % |")
    lines += [
        "",
        "| width | step ms | tok/s | at the roof | Python loop ms | products GB/s | its split ms: products, attention,"
        " glue, Python |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for width, s in steps.items():
        if "skipped" in s:
            lines.append(f"| {width} | {s['skipped']} |")
            continue
        p, best = s["parts_ms"], s["weights_gb"] / roof * 1e3
        whole = sum(p.values())
        split = ", ".join(f"{v:.1f} ({100 * v / whole:.0f} %)" for v in p.values())
        lines.append(
            f"| {width} | {s['step_ms']:.1f} | {1e3 / s['step_ms']:.1f} | {best:.1f} ms, {1e3 / best:.1f} tok/s "
            f"({100 * best / s['step_ms']:.0f} %) | {s['loop_step_ms']:.1f}{'' if s['one_call'] else ' (the step)'} | "
            f"{s['products_gbs']:.1f} | {whole:.1f}: {split} |"
        )
    return "\n".join(lines)
