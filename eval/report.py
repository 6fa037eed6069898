"""`python -m eval.report runs/A runs/B ...`: per-category x metric tables and charts from judged runs."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from .common import read_jsonl


def summarize(run: Path) -> dict:
    """Mean score per category x metric, per metric, overall; counts of scored and unparsed items."""
    judged = read_jsonl(run / "judgments.jsonl")
    answers = read_jsonl(run / "answers.jsonl")
    scored = [r for r in judged if "scores" in r]
    metrics = list(scored[0]["scores"]) if scored else []
    cells: dict = defaultdict(list)
    for r in scored:
        for m, v in r["scores"].items():
            cells[(r.get("category") or "?", m)].append(v)
            cells[("all", m)].append(v)
    mean = {k: sum(v) / len(v) for k, v in cells.items()}
    categories = sorted({c for c, _ in cells if c != "all"})
    by_category = {c: sum(mean[(c, m)] for m in metrics) / len(metrics) for c in categories} if metrics else {}
    overall = sum(mean[("all", m)] for m in metrics) / len(metrics) if metrics else float("nan")
    name = Path(answers[0]["model"]).name if answers and answers[0].get("model") else run.name
    return {
        "name": name,
        "run": str(run),
        "metrics": metrics,
        "categories": categories,
        "mean": mean,
        "by_category": by_category,
        "overall": overall,
        "scored": len(scored),
        "unparsed": sum(1 for r in judged if r.get("unparsed")),
        "answers": len(answers),
    }


def table(s: dict) -> str:
    short = [m[:8] for m in s["metrics"]]
    lines = [
        f"{s['name']}  (run {s['run']}): overall {s['overall']:.2f} / 5 over {s['scored']} scored answers"
        f"{', ' + str(s['unparsed']) + ' unparsed' if s['unparsed'] else ''}",
        f"  {'category':<15}" + "".join(f"{m:>9}" for m in short) + f"{'mean':>8}",
    ]
    for c in s["categories"] + ["all"]:
        row = "".join(f"{s['mean'][(c, m)]:>9.2f}" for m in s["metrics"])
        avg = s["by_category"].get(c, s["overall"])
        lines.append(f"  {c:<15}{row}{avg:>8.2f}")
    return "\n".join(lines)


def chart(summaries: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = sorted({c for s in summaries for c in s["categories"]})
    metrics = summaries[0]["metrics"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [2.2, 1]})
    width = 0.8 / len(summaries)
    for i, s in enumerate(summaries):
        xs = [j + i * width for j in range(len(categories))]
        left.bar(xs, [s["by_category"].get(c, 0) for c in categories], width, label=f"{s['name']} ({s['overall']:.2f})")
        right.bar([j + i * width for j in range(len(metrics))], [s["mean"][("all", m)] for m in metrics], width)
    left.set_xticks(
        [j + width * (len(summaries) - 1) / 2 for j in range(len(categories))], categories, rotation=30, ha="right"
    )
    right.set_xticks(
        [j + width * (len(summaries) - 1) / 2 for j in range(len(metrics))], metrics, rotation=30, ha="right"
    )
    for ax, title in ((left, "mean score per category (1-5)"), (right, "mean score per metric (1-5)")):
        ax.set_ylim(0, 5.2)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    left.legend(fontsize=9, loc="lower left")
    fig.suptitle("LLM-judged answers, by model", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.report", description=__doc__.split(":")[1].strip())
    p.add_argument("runs", nargs="+", help="run folders, each with answers.jsonl and judgments.jsonl")
    p.add_argument("--chart", default=None, metavar="PNG", help="write a comparison chart")
    a = p.parse_args(argv)
    summaries = []
    for run in map(Path, a.runs):
        if not (run / "judgments.jsonl").is_file():
            print(f"error: {run} has no judgments.jsonl; run python -m eval.judge first", file=sys.stderr)
            return 2
        summaries.append(summarize(run))
    print(
        "\n\n".join(
            table(s)
            if s["scored"]
            else f"{s['name']}  (run {s['run']}): no scored answers ({s['unparsed']} unparsed of {s['answers']})"
            for s in summaries
        )
    )
    summaries = [s for s in summaries if s["scored"]]
    if a.chart and not summaries:
        print("no chart: no run has scored answers", file=sys.stderr)
    elif a.chart:
        chart(summaries, Path(a.chart))
        print(f"wrote {a.chart}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
