"""The benchmark's results as people read them: a table, ratios against llama.cpp, a bar chart, the machine."""

from __future__ import annotations

from pathlib import Path

SAME_WIDTH = {"llm42": "llama.cpp-f16", "llm42-int8": "llama.cpp-q8_0", "llm42-int4": "llama.cpp-q4_0"}
BASELINE = "hf-fp32"


def ratios(results: dict[str, dict]) -> dict[str, dict]:
    """Each llm42 row divided by llama.cpp at the same weight width: decode speed (above 1 is better for llm42),
    TTFT@1024 and peak memory (below 1 is better)."""
    out = {}
    for mine, theirs in SAME_WIDTH.items():
        a, b = results.get(mine, {}), results.get(theirs, {})
        if "decode_tps" in a and "decode_tps" in b:
            out[mine] = {
                "vs": theirs,
                "decode": a["decode_tps"] / b["decode_tps"],
                "ttft1024": a["ttft1024_s"] / b["ttft1024_s"],
                "peak": a["peak_gb"] / b["peak_gb"],
            }
    return out


def table(results: dict[str, dict], memory: str = "peak RSS GB") -> str:
    base = results.get(BASELINE, {})
    rel = ratios(results)
    head = (
        f"{'config':<15} {'load s':>7} {'TTFT@200':>9} {'TTFT@1024':>10} {'decode tok/s':>13} {'x base':>7} "
        f"{'follow-up TTFT':>15} {memory:>12} {'vs llama.cpp (decode, TTFT@1024)':>34}"
    )
    lines = [head, "-" * len(head)]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    for name, r in results.items():
        if "skipped" in r:
            lines.append(f"{name:<15} skipped: {r['skipped']}")
            continue
        ratio = r["decode_tps"] / base["decode_tps"] if base.get("decode_tps") else None
        vs = rel.get(name)
        against = f"{vs['decode']:.2f}x, {vs['ttft1024']:.2f}x" if vs else ""
        lines.append(
            f"{name:<15} {r['load_s']:>7.1f} {r['ttft200_s']:>9.2f} {r['ttft1024_s']:>10.2f} "
            f"{r['decode_tps']:>13.2f} {fmt(ratio, '>6.2f') + ('x' if ratio else ''):>7} "
            f"{fmt(r.get('followup_ttft_s'), '>15.2f'):>15} {r['peak_gb']:>12.2f} {against:>34}"
        )
    return "\n".join(lines)


def chart(results: dict[str, dict], machine: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: v for k, v in results.items() if "skipped" not in v}
    names = list(rows)
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.45 * len(names) + 2.2))
    panels = [
        ("decode_tps", "decode tokens/s (higher is better)"),
        ("ttft1024_s", "TTFT s, 1,024-token prompt (lower is better)"),
        ("peak_gb", "peak memory GB (lower is better)"),
    ]
    colors = [
        "#9aa0a6" if n.startswith("hf-") else "#e37400" if n.startswith("llama.cpp") else "#1a73e8" for n in names
    ]
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

    from ..cpu import native
    from ..cpu.flags import cpu_name, cpu_threads

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    return (
        f"{cpu_name()}, {cpu_threads()} threads, torch {torch.__version__} "
        f"(kernels: PyTorch {torch.backends.cpu.get_cpu_capability()}, llm42 {native.target()})"
    )
