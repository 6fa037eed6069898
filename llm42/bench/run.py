"""`python -m llm42.bench`: load time, TTFT, decode speed and peak memory on the full 42dot shape.

Each configuration runs in a fresh process, one after another (two heavy processes on a small CPU
would only measure each other). The model is random-weight with the exact 42dot config: speed does
not depend on weight values. With --llama-cpp, llama.cpp runs the same model (GGUF f16, q8_0, q4_0)
with the same prompts and timing points, and each llm42 row is compared with llama.cpp at its width.
Results are printed as a table, written as JSON and, with matplotlib installed, drawn as a bar chart."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from ..extras import can_import
from .inputs import bench_model, quantized_model, quantized_path
from .report import chart, machine_line, ratios, table
from .timing import spinners

CONFIGS = {
    "hf-fp32": "model.generate + TextIteratorStreamer, fp32 (what most scripts do)",
    "hf-bf16": "model.generate + TextIteratorStreamer, bf16",
    "llm42": "llm42 default: bf16, own decode step, prompt cache",
    "llm42-int8": "llm42 --quantize int8 (saved quantized model)",
    "llm42-int4": "llm42 --quantize int4 (saved quantized model)",
}
LLAMA_CPP = {
    "llama.cpp-f16": "llama.cpp, f16 GGUF",
    "llama.cpp-q8_0": "llama.cpp, q8_0 GGUF",
    "llama.cpp-q4_0": "llama.cpp, q4_0 GGUF",
}


def prepare(config: str) -> None:
    """What a configuration reads, made before it is timed: the quantized folder, or llama.cpp's GGUF."""
    if config.startswith("llm42-int"):
        quantized_model(config.split("-")[1])
    elif config.startswith("llama.cpp"):
        from .llamacpp import gguf_of

        gguf_of(bench_model(), config.split("-", 1)[1])


def worker(config: str, new_tokens: int, device: str, long_context: int = 0) -> dict:
    """One configuration, measured in this process."""
    import torch

    from ..model.device import peak_memory_gb
    from .rows import run_hf, run_llama_cpp, run_llm42

    if config.startswith("hf-"):
        result = run_hf(config[3:], bench_model(), new_tokens, device)
    elif config == "llm42":
        result = run_llm42(bench_model(), new_tokens, device, long_context)
    elif config.startswith("llm42-int"):
        result = run_llm42(quantized_path(config.split("-")[1]), new_tokens, device, long_context)
    else:
        result = run_llama_cpp(config.split("-", 1)[1], new_tokens)
    result.setdefault("peak_gb", peak_memory_gb(torch.device(device if device.startswith("cuda") else "cpu")))
    return result


def measure(config: str, new_tokens: int, device: str, long_context: int = 0, busy: int = 0) -> dict:
    """One configuration in a fresh process, after its inputs are made in another one (never timed)."""
    here = [sys.executable, "-m", "llm42.bench"]
    if config.startswith(("llm42-int", "llama.cpp")):
        made = subprocess.run([*here, "--prepare", config], stdout=subprocess.DEVNULL)
        if made.returncode != 0:
            return dict(skipped="its model could not be made (see above)")
    cmd = [
        *here,
        "--worker",
        config,
        "--new-tokens",
        str(new_tokens),
        "--device",
        device,
        "--long-context",
        str(long_context),
    ]
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


def median_run(runs: list[dict]) -> dict:
    """One configuration's runs as one row: each figure's median, the peak memory's highest (a run that was skipped
    makes the row skipped), and its decode speeds in the order run."""
    if len(runs) == 1 or any("skipped" in r for r in runs):
        return next((r for r in runs if "skipped" in r), runs[0])
    row = {**runs[0], "decode_runs": [r["decode_tps"] for r in runs]}
    for key, value in runs[0].items():
        if isinstance(value, float) and all(isinstance(r.get(key), float) for r in runs):
            row[key] = statistics.median(r[key] for r in runs)
    row["peak_gb"] = max(r["peak_gb"] for r in runs)
    return row


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llm42.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default=None, help=f"comma-separated, from: {', '.join([*CONFIGS, *LLAMA_CPP])}")
    p.add_argument(
        "--llama-cpp",
        action="store_true",
        help="add llama.cpp at f16, q8_0 and q4_0 (needs llama-cpp-python; see README)",
    )
    p.add_argument("--device", default="cpu", help="cpu, or cuda: llm42 and the transformers baseline on the GPU")
    p.add_argument("--new-tokens", type=int, default=128, help="tokens per decode measurement")
    p.add_argument(
        "--long-context",
        type=int,
        default=0,
        metavar="N",
        help="also measure llm42's decode speed with N tokens of context (e.g. 4000)",
    )
    p.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="also measure each configuration with N processes spinning beside it (a busy laptop)",
    )
    p.add_argument("--json", default="runs/bench.json", help="where to write the results")
    p.add_argument("--chart", default=None, metavar="PNG", help="draw a bar chart (needs matplotlib)")
    p.add_argument(
        "--speculate",
        action="store_true",
        help="measure prompt-lookup speculation instead (SmolLM2, grounded and open-chat prompt sets)",
    )
    p.add_argument(
        "--replay",
        action="store_true",
        help="replay the --speculate sets' replies through the drafter at this machine's verify costs (exact, in "
        "steps; the replies are answered once and kept in runs/replay.json)",
    )
    p.add_argument(
        "--start",
        action="store_true",
        help="measure the speed a user meets instead: first and second start, a first reply beside a busy core",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="measure resuming a 3,000-token chat instead, with and without the KV kept on disk (bf16, int4)",
    )
    p.add_argument(
        "--kernels",
        action="store_true",
        help="measure a roofline instead: read bandwidth, each product in GB/s, one decode step split by kind",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="runs of each configuration, interleaved with the others' (their medians are reported; default 1); "
        "with --start: first replies per condition (default 3); with --replay and --speculate: seed streams for the "
        "sampled modes",
    )
    p.add_argument(
        "--model-path", default=None, help="with --speculate, --replay, --start: another model (default: SmolLM2)"
    )
    p.add_argument("--quantize", default="none", choices=("none", "int8", "int4"), help="with --speculate or --resume")
    p.add_argument("--no-verify-costs", action="store_true", help="with --speculate: skip the 42dot-shape costs")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--prepare", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = setup_arg_parser().parse_args(argv)
    if args.prepare:
        prepare(args.prepare)
        return 0
    if args.speculate:
        from .speculation import main as speculation

        return speculation(args)
    if args.replay:
        from .replay import main as replay

        return replay(args)
    if args.rounds is not None and args.rounds < 1:
        print("llm42.bench: error: --rounds must be 1 or more", file=sys.stderr)
        return 2
    if args.start:
        from .start import main as start

        args.rounds = args.rounds or 3
        return start(args)
    if args.resume:
        from .resume import main as resume

        return resume(args)
    if args.kernels:
        from .roofline import main as roofline

        return roofline(args)
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
        print(
            f"llm42.bench: error: unknown config {unknown[0]!r}; choose from {', '.join([*CONFIGS, *LLAMA_CPP])}",
            file=sys.stderr,
        )
        return 2
    bench_model()
    machine = machine_line(args.device)
    print(f"machine: {machine}", file=sys.stderr)
    runs: dict[str, list[dict]] = {}
    rounds = args.rounds or 1
    for i in range(rounds):  # each round in the other order: a machine whose speed drifts weighs on all alike
        for c in configs if i % 2 == 0 else configs[::-1]:
            print(f"measuring {c}: {CONFIGS.get(c) or LLAMA_CPP[c]}" + (f" (round {i + 1})" if rounds > 1 else ""),
                  file=sys.stderr)  # fmt: skip
            runs.setdefault(c, []).append(measure(c, args.new_tokens, args.device, args.long_context))
            if args.busy:
                busy = measure(c, args.new_tokens, args.device, args.long_context, args.busy)
                runs.setdefault(f"{c} busy{args.busy}", []).append(busy)
    results = {name: median_run(r) for name, r in runs.items()}
    print(table(results, "peak GPU GB" if cuda else "peak RSS GB"))
    if rounds > 1:
        for name, r in results.items():
            if "decode_runs" in r:
                print(f"{name}: decode over {rounds} runs " + ", ".join(f"{v:.2f}" for v in r["decode_runs"]))
    for name, r in results.items():
        if "decode_tps_long" in r:
            print(
                f"{name}: decode {r['decode_tps_long']:.2f} tokens/s with {r['long_context']} tokens of context, "
                f"{r['decode_tps_long'] / r['decode_tps']:.2f}x its speed at 200"
            )
    for name, r in results.items():
        quiet = results.get(name.rsplit(" busy", 1)[0], {})
        if " busy" in name and r.get("decode_tps") and quiet.get("decode_tps"):
            print(f"{name}: decode {r['decode_tps']:.2f} tokens/s, {r['decode_tps'] / quiet['decode_tps']:.2f}x quiet")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": machine,
                "device": args.device,
                "new_tokens": args.new_tokens,
                "results": results,
                "vs_llama_cpp": ratios(results),
            },
            indent=1,
        )
    )
    print(f"wrote {out}", file=sys.stderr)
    if args.chart:
        chart(results, machine, Path(args.chart))
        print(f"wrote {args.chart}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
