"""`python -m eval.answer`: answer every prompt of a benchmark set with llm42's own generation.

Same template and sampling defaults as the chat, seedable. Resumable: ids already in the output file
are skipped. A prompt that fails is recorded with its error, and the run goes on."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from llm42.args import SAMPLING_FLAGS
from llm42.errors import Llm42Error
from llm42.settings import ModelSettings, SamplingSettings, number_flag

from .common import append_jsonl, read_bench, read_jsonl


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.answer", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model-path",
        required=True,
        metavar="PATH",
        help="the model to answer with: a Hugging Face id, a local folder or a .gguf file, as in the chat",
    )
    p.add_argument(
        "--bench",
        default="eval/benchmark_set.csv",
        metavar="CSV",
        help="the prompt set: columns id, question, category, task (default: %(default)s)",
    )
    p.add_argument("--out", required=True, help="answers.jsonl (appended to; done ids are skipped)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps, as in the chat (default: auto)")
    p.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32, as in the chat (default: auto)")
    p.add_argument("--quantize", default="none", choices=("none", "int8", "int4"))
    chat = SamplingSettings()  # the chat's defaults, so answers are what a user would get
    for name, metavar, text in SAMPLING_FLAGS:
        default = getattr(chat, name) if name != "seed" else 0
        extra = "each prompt is sampled with seed + its position" if name == "seed" else text
        p.add_argument(
            "--" + name.replace("_", "-"),
            type=number_flag(name),
            default=default,
            metavar=metavar,
            help=f"{extra} (default: {default})",
        )
    p.add_argument("--limit", type=int, default=None, help="answer only the first N prompts")
    p.add_argument(
        "--per-category", type=int, default=None, metavar="K", help="only the first K prompts of each category"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    a = setup_arg_parser().parse_args(argv)  # before the heavy imports: --help and bad flags answer at once
    from llm42.engine import complete, open_engine

    rows = read_bench(Path(a.bench))
    if a.per_category:
        seen: dict[str, int] = {}
        rows = [
            r
            for r in rows
            if seen.setdefault(r["category"], 0) < a.per_category
            and not seen.__setitem__(r["category"], seen[r["category"]] + 1)
        ]
    rows = rows[: a.limit]
    out = Path(a.out)
    done = {str(r["id"]) for r in read_jsonl(out) if "answer" in r}
    todo = [r for r in rows if str(r["id"]) not in done]
    print(f"{len(rows)} prompts, {len(rows) - len(todo)} already answered in {out}", file=sys.stderr)
    if not todo:
        return 0
    try:
        # no KV kept between runs: each answer is prefilled whole, the same however often the set is run
        model = ModelSettings(path=a.model_path, device=a.device, dtype=a.dtype, quantize=a.quantize, kv_cache_gb=0)
        engine, _, seconds = open_engine(model, a.max_new_tokens, info=lambda t: print(t, file=sys.stderr))
    except Llm42Error as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"loaded in {seconds:.1f}s", file=sys.stderr)
    tokens = spent = 0.0
    columns = (
        TextColumn("answering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        job = bar.add_task("answer", total=len(rows), completed=len(rows) - len(todo), speed="")
        for position, row in enumerate(rows):
            if str(row["id"]) in done:
                continue
            s = SamplingSettings(
                **{name: getattr(a, name) for name, _, _ in SAMPLING_FLAGS} | {"seed": a.seed + position}
            )
            record = {
                "id": row["id"],
                "category": row["category"],
                "task": row["task"],
                "question": row["question"],
                "model": a.model_path,
                "seed": s.seed,
            }
            start = time.perf_counter()
            try:
                text, stats = complete(engine, row["question"], s)
                record |= {
                    "answer": text,
                    "finish_reason": stats.finish_reason,
                    "prompt_tokens": stats.prompt_tokens,
                    "completion_tokens": stats.generation_tokens,
                    "ttft_s": round(stats.ttft, 3),
                    "tokens_per_s": round(stats.decode_tps, 2),
                }
                tokens += stats.generation_tokens
            except Exception as e:  # one bad prompt is recorded, never fatal
                record["error"] = f"{type(e).__name__}: {e}"
            spent += time.perf_counter() - start
            append_jsonl(out, record)
            bar.update(job, advance=1, speed=f"{tokens / spent:.1f} tok/s" if spent else "")
    failed = sum(1 for r in read_jsonl(out) if "error" in r)
    print(f"wrote {out}" + (f" ({failed} failed; re-run to retry them)" if failed else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
