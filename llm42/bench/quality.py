"""`python -m llm42.bench.quality`: what each weight mode costs in quality, against fp32 on real weights.

Per mode: perplexity on a fixed text shipped with llm42 (llm42/data/quality_text.txt, ~2,300 tokens)
and greedy agreement with fp32 on a few chat prompts. Run it on a real model, e.g. SmolLM2-135M-Instruct."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

TEXT = Path(__file__).parent.parent / "data" / "quality_text.txt"
PROMPTS = [
    "What is the capital of France?",
    "Explain in two sentences why the sky is blue.",
    "Write a short poem about the sea.",
    "Give me three tips for learning a new language.",
    "What is 12 times 7? Explain your steps.",
    "Write a Python function that reverses a string.",
]
TARGETS = {"fp32": 0.0, "bf16": 0.5, "int8": 2.0, "int4": 8.0}  # allowed perplexity increase, percent


def load(model_path: str, mode: str):
    import torch
    from transformers import AutoModelForCausalLM

    from ..gen.tuning import tune
    from ..model.quantize import quantize_model

    dtype = torch.float32 if mode == "fp32" else torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).eval()
    if mode in ("int8", "int4"):
        quantize_model(model, mode)
    model.llm42_kernels = tune(model)  # the decode kernels the chat would use on this machine
    return model


def perplexity(model, ids: list[int], window: int = 1024) -> float:
    """exp(mean NLL) over non-overlapping windows; each window predicts its own tokens 2..n."""
    import torch

    nll, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start : start + window]])
            if chunk.shape[1] < 2:
                break
            logits = model(input_ids=chunk).logits.float()
            nll += torch.nn.functional.cross_entropy(logits[0, :-1], chunk[0, 1:], reduction="sum").item()
            count += chunk.shape[1] - 1
    return math.exp(nll / count)


def greedy(model, tokenizer, prompt: str, n: int = 48) -> list[int]:
    from ..gen.generate import generate_steps, open_cache
    from ..settings import SamplingSettings

    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    s = SamplingSettings(temperature=0, repetition_penalty=1.0, max_new_tokens=n)
    return [
        st.token
        for st in generate_steps(open_cache(model, kernels=model.llm42_kernels), ids, s, {tokenizer.eos_token_id})
    ]


def agreement(a: list[int], b: list[int]) -> float:
    """Share of the reference's tokens produced before the first difference."""
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return same / max(len(a), len(b), 1)


def evaluate(model_path: str, modes: list[str]) -> dict:
    import torch
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_path)
    ids = tok.encode(TEXT.read_text(encoding="utf-8"), add_special_tokens=False)
    results, reference = {}, None
    for mode in ["fp32"] + [m for m in modes if m != "fp32"]:
        model = load(model_path, mode)
        outs = [greedy(model, tok, p) for p in PROMPTS]
        reference = reference or outs
        r = {
            "perplexity": perplexity(model, ids),
            "greedy_exact": sum(a == b for a, b in zip(reference, outs)),
            "greedy_agreement": sum(agreement(a, b) for a, b in zip(reference, outs)) / len(outs),
        }
        results[mode] = r
        del model
    base = results["fp32"]["perplexity"]
    for mode, r in results.items():
        r["ppl_increase_pct"] = 100 * (r["perplexity"] / base - 1)
        r["target_pct"] = TARGETS.get(mode)
        r["meets_target"] = r["ppl_increase_pct"] <= TARGETS.get(mode, 0) + 1e-9
    return {"model": model_path, "tokens": len(ids), "prompts": len(PROMPTS), "results": results}


def table(report: dict) -> str:
    lines = [f"{'mode':<6} {'perplexity':>10} {'vs fp32':>9} {'target':>8} {'greedy = fp32':>14} {'agreement':>10}"]
    for mode, r in report["results"].items():
        lines.append(
            f"{mode:<6} {r['perplexity']:>10.3f} "
            f"{r['ppl_increase_pct']:>+8.2f}% {'<= +' + str(r['target_pct']) + '%':>8} "
            f"{r['greedy_exact']:>8}/{report['prompts']:<5} {100 * r['greedy_agreement']:>9.1f}%"
            f"{'' if r['meets_target'] else '  (misses its target)'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llm42.bench.quality", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-path", required=True, help="a local model folder (safetensors)")
    p.add_argument(
        "--modes",
        default="fp32,bf16,int8,int4",
        help="comma-separated weight modes to compare with fp32, from fp32, bf16, int8, int4 (default: %(default)s)",
    )
    p.add_argument(
        "--json",
        default="runs/quality.json",
        metavar="FILE",
        help="where to write the figures as JSON (default: %(default)s)",
    )
    args = p.parse_args(argv)
    report = evaluate(args.model_path, [m.strip() for m in args.modes.split(",") if m.strip()])
    print(table(report))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
