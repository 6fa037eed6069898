"""`python -m eval.zeroshot`: zero-shot tasks through lm-eval-harness's Hugging Face backend.

KoBEST (kobest_boolq, kobest_copa, kobest_hellaswag, kobest_sentineg: macro-F1) and English tasks (arc_easy,
boolq, hellaswag, piqa, ...: accuracy) come from lm-eval and download their data; tasks in eval/tasks/ run
offline from files in the repo. Needs the extra: pip install -r eval/requirements-zeroshot.txt"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

from llm42.extras import can_import

LOCAL_TASKS = Path(__file__).parent / "tasks"


def local_task_dir(folder: Path = LOCAL_TASKS) -> Path:
    """The repo's task YAMLs with their data paths made absolute, in a temporary folder for lm-eval."""
    out = Path(tempfile.mkdtemp(prefix="llm42-tasks-"))
    for spec in folder.glob("*.yaml"):
        task = yaml.safe_load(spec.read_text(encoding="utf-8"))
        files = task.get("dataset_kwargs", {}).get("data_files", {})
        for split, name in files.items():
            files[split] = str((spec.parent / name).resolve())
        (out / spec.name).write_text(yaml.safe_dump(task, allow_unicode=True), encoding="utf-8")
    return out


def primary(metrics: dict) -> tuple[str, float] | None:
    """The task's headline metric: macro-F1 where reported, else accuracy, else the first number."""
    values = {
        k.split(",")[0]: v
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and "stderr" not in k and k != "sample_len"
    }
    for name in ("f1", "macro_f1", "acc_norm", "acc"):
        if name in values:
            return name, float(values[name])
    return next(iter(values.items()), None)


def setup_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.zeroshot", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-path", required=True)
    p.add_argument("--tasks", required=True, help="comma-separated lm-eval task names (or llm42_easy_mc)")
    p.add_argument("--out", default="runs/zeroshot.json")
    p.add_argument("--chart", default=None, metavar="PNG")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-size", default="4")
    p.add_argument("--limit", type=int, default=None, help="items per task (a quick look)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = setup_arg_parser().parse_args(argv)
    if a.chart and not can_import("matplotlib"):  # said before the evaluation, not after
        print("error: --chart needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        print("error: lm-eval is not installed: pip install -r eval/requirements-zeroshot.txt", file=sys.stderr)
        return 2
    import torch

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    ours = {f.stem for f in local_task_dir().glob("*.yaml")}  # each file names its task after itself
    # lm-eval's own ~14,000 task files take ~13 s to index: only when a task asked for is one of them
    manager = TaskManager(include_path=str(local_task_dir()), include_defaults=not set(tasks) <= ours)
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={a.model_path},dtype={a.dtype}",
        tasks=tasks,
        task_manager=manager,
        batch_size=a.batch_size,
        device=device,
        limit=a.limit,
    )["results"]
    rows = {}
    print(f"{'task':<24} {'metric':<10} {'value':>7}")
    for task in tasks:
        head = primary(results.get(task, {}))
        if head:
            rows[task] = {"metric": head[0], "value": head[1]}
            print(f"{task:<24} {head[0]:<10} {head[1]:>7.4f}")
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": a.model_path, "tasks": rows, "raw": results}, indent=1, default=str))
    print(f"wrote {out}", file=sys.stderr)
    if a.chart:
        chart(rows, Path(a.model_path).name, Path(a.chart))
    return 0


def chart(rows: dict, model: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(rows) + 2), 3.8))
    bars = ax.bar(list(rows), [r["value"] for r in rows.values()], color="#1a73e8")
    ax.bar_label(bars, labels=[f"{r['value']:.3f}\n{r['metric']}" for r in rows.values()], fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_title(f"zero-shot, {model}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
