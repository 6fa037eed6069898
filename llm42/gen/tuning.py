"""Per-phase kernel choice on the CPU, measured on this machine with the model's own weights.

PyTorch sends bf16 matmuls to oneDNN by default. That is what makes prefill fast (AMX, AVX512-BF16),
but on some CPUs oneDNN is the slower path for one-token decode steps. Which is faster differs between
CPUs, so it is timed here at start-up rather than assumed."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..cpu import native
from ..cpu.flags import cpu_flags
from ..cpu.memory import keep_freed_memory
from ..model.plan import Decode, decode_path
from ..paths import cache_dir
from .decode import attend, decode_layers, gemv, kind_of
from .kvcache import KVCache

CACHE_FILE = cache_dir() / "kernels.json"
SAME = 1.05  # within 5 %, llm42's own kernel is taken for a decode step (the verify pass rounds as it does)


@dataclass
class Kernels:
    prefill_onednn: bool = True
    decode_onednn: bool = True
    own_matmuls: list[str] = field(default_factory=list)  # layer kinds whose decode matmuls use llm42's C kernels
    own_attention: bool = False  # and for its attention
    note: str = "PyTorch defaults"

    def use(self, tokens: int) -> None:
        """Set oneDNN for a forward pass over `tokens` new tokens."""
        want = self.decode_onednn if tokens == 1 else self.prefill_onednn
        if torch.backends.mkldnn.enabled != want:
            torch.backends.mkldnn.enabled = want


def _time(weights: list[torch.Tensor], rows: int, onednn: bool) -> float:
    xs = [torch.randn(rows, w.shape[1], dtype=w.dtype) for w in weights]
    return _time_step([lambda x, w=w: F.linear(x, w) for w in weights], xs, onednn)


def _time_step(fns: list, xs: list[torch.Tensor], onednn: bool) -> float:
    """One decode step's matmuls, each weight streamed from memory as in a real step."""
    before, torch.backends.mkldnn.enabled = torch.backends.mkldnn.enabled, onednn
    try:
        with torch.inference_mode():
            t = time.perf_counter()
            for f, x in zip(fns, xs):
                f(x)
            return time.perf_counter() - t
    finally:
        torch.backends.mkldnn.enabled = before


def _key(model: nn.Module, shapes: list[torch.Size]) -> str:
    kinds = sorted({kind_of(m) for m in model.modules() if hasattr(m, "in_features")})
    return (
        f"{hashlib.sha256(cpu_flags().encode()).hexdigest()[:12]}|{torch.backends.cpu.get_cpu_capability()}|"
        f"{native.target()}|{torch.__version__}|{torch.get_num_threads()}|{model.dtype}|{kinds}|{len(shapes)}|"
        f"{sorted({tuple(s) for s in shapes})}"
    )


def _key_for(model: nn.Module) -> str | None:
    """What a remembered choice for this model is filed under; None where there is nothing to choose (a GPU, or
    fp32: PyTorch's fp32 kernels then)."""
    if decode_path(model.config, model.device.type) is not Decode.STEP:
        return None
    if model.dtype not in (torch.bfloat16, torch.float16):
        return None
    return f"{_model_key(model)}|v6"


def _has_native(model: nn.Module) -> bool:
    """Whether llm42's C kernels take part in the choice (they are built, and work on bf16)."""
    return native.library() is not None and model.dtype == torch.bfloat16


def cached(model: nn.Module, cache_file: Path | None = CACHE_FILE) -> Kernels | None:
    """The choice for this model without measuring: remembered, or PyTorch's defaults where there is nothing to
    choose; None when tune() has to measure. A remembered entry of the wrong shape counts as none."""
    key = _key_for(model)
    if key is None:
        return Kernels()
    try:
        return Kernels(**_load(cache_file)[key])
    except (KeyError, TypeError):
        return None


def tune(model: nn.Module, cache_file: Path | None = CACHE_FILE) -> Kernels:
    """Measure, on this machine and the model's own weights, which kernels a decode step should use: PyTorch's
    (with oneDNN on or off) or llm42's own C kernels for the matmuls, and for attention; and oneDNN on or off
    for a 16-token prefill chunk. Kept per CPU, torch version and model shape, so later starts skip it."""
    if model.device.type == "cpu":
        keep_freed_memory()
    known = cached(model, cache_file)
    if known is not None:
        return known
    key, layers, has_native = _key_for(model), decode_layers(model), _has_native(model)
    xs = [torch.randn(1, m.in_features, dtype=model.dtype) for m in layers]
    torch_fns, own_fns = [gemv(m) for m in layers], [gemv(m, own=True) for m in layers]
    _time_step(torch_fns, xs, True)  # first touch of every weight: paid here instead of by the first token
    kinds = sorted({kind_of(m) for m in layers})
    runs: dict[tuple[str, str], list[float]] = {}
    for _ in range(2):  # alternating is fair to all
        for kind in kinds:
            mine = [i for i, m in enumerate(layers) if kind_of(m) == kind]
            for name, fns, onednn in (
                ("oneDNN", torch_fns, True),
                ("ATen", torch_fns, False),
                ("llm42", own_fns, False),
            ):
                if name != "llm42" or has_native:
                    t = _time_step([fns[i] for i in mine], [xs[i] for i in mine], onednn)
                    runs.setdefault((kind, name), []).append(t)
    d = {key: min(v) for key, v in runs.items()}
    best = {kind: min((name for k, name in d if k == kind), key=lambda name: d[(kind, name)]) for kind in kinds}
    for kind in kinds:  # llm42's kernel where it is about as fast: it rounds as the verify pass does (speculate.py)
        if (kind, "llm42") in d and d[(kind, "llm42")] <= SAME * d[(kind, best[kind])]:
            best[kind] = "llm42"
    step = {
        name: sum(d[(k, name if (k, name) in d else "ATen")] for k in kinds) for name in ("oneDNN", "ATen", "llm42")
    }
    step["chosen"] = sum(d[(k, best[k])] for k in kinds)
    attention = _time_attention(model) if has_native else {}
    weights = [m.weight.detach() for m in layers if isinstance(m, nn.Linear) and m.weight.dtype != torch.float32]
    p = {True: 0.0, False: 0.0}
    if weights:
        big = [max(weights, key=lambda w: w.numel())]
        p = {on: min(_time(big, 16, on), _time(big, 16, on)) for on in (True, False)}
    k = Kernels(
        prefill_onednn=p[True] <= p[False],
        decode_onednn=step["oneDNN"] <= step["ATen"],
        own_matmuls=[kind for kind in kinds if best[kind] == "llm42"],
        own_attention=bool(attention) and attention["llm42"] < attention["PyTorch"],
    )
    k.note = (
        "decode matmuls per step: "
        + ", ".join(f"{n} {t * 1e3:.0f} ms" for n, t in step.items() if n != "chosen")
        + f" -> {', '.join(f'{kind} {name}' for kind, name in best.items())} ({step['chosen'] * 1e3:.0f} ms)"
        + (
            f"; attention over 512 tokens: llm42 {attention['llm42'] * 1e6:.0f} us, PyTorch "
            f"{attention['PyTorch'] * 1e6:.0f} us per layer"
            if attention
            else ""
        )
        + (
            f"; prefill {'oneDNN' if k.prefill_onednn else 'ATen'} ({p[True] * 1e3:.1f} vs {p[False] * 1e3:.1f} ms "
            "per 16 tokens on one layer)"
            if weights
            else ""
        )
        + "; measured on this machine"
    )
    _save(cache_file, {**_load(cache_file), key: asdict(k)})
    return k


def remembered(model: nn.Module, what: str, cache_file: Path | None = CACHE_FILE):
    """Another measurement kept for this machine and model (e.g. what a verify pass costs); None if none."""
    return _load(cache_file).get(_what_key(model, what))


def keeper(model: nn.Module, what: str, cache_file: Path | None = CACHE_FILE):
    """A function that keeps another measurement for this machine and model, under the key of now (the thread count
    in it may change before the value is known)."""
    key = _what_key(model, what)
    return lambda value: _save(cache_file, {**_load(cache_file), key: value})


def _what_key(model: nn.Module, what: str) -> str:
    return f"{_model_key(model)}|{what}"


def _model_key(model: nn.Module) -> str:
    """This machine, torch, the model's shapes and kinds, and whether llm42's kernels take part."""
    return f"{_key(model, [_shape_of(m) for m in decode_layers(model)])}|native={_has_native(model)}"


def _shape_of(m: nn.Module) -> torch.Size:
    return torch.Size([m.out_features, m.in_features]) if hasattr(m, "out_features") else m.weight.shape


def _time_attention(model: nn.Module) -> dict[str, float]:
    """One layer's attention for one token over 512 cached tokens: PyTorch's matmuls vs llm42's kernel."""

    kv = KVCache(model.config, 1024, torch.bfloat16, "cpu")
    kv.begin(512)
    kv.k[0].normal_(), kv.v[0].normal_()
    kv.commit()
    scale = kv.head_dim**-0.5
    q = torch.randn(model.config.num_attention_heads, kv.head_dim, dtype=torch.bfloat16)
    keys, values = kv.k[0][:, :512], kv.v[0][:, :512]
    out = {}
    for _ in range(2):
        for name, f in (
            ("PyTorch", lambda: attend(q, keys, values, scale)),
            ("llm42", lambda: native.attend(q, kv.k[0], kv.v[0], 512, scale)),
        ):
            with torch.inference_mode():
                f()
                t = time.perf_counter()
                for _ in range(10):
                    f()
                out[name] = min(out.get(name, 1e9), (time.perf_counter() - t) / 10)
    return out


def _load(path: Path | None) -> dict:
    """The remembered choices; {} for a missing, unreadable or foreign file (it is written anew)."""
    try:
        data = json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(path: Path | None, data: dict) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs the timing at the next start
