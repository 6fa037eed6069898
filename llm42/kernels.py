"""Per-phase kernel choice on the CPU, measured on this machine with the model's own weights.

PyTorch sends bf16 matmuls to oneDNN by default. That is what makes prefill fast (AMX, AVX512-BF16),
but on some CPUs oneDNN is the slower path for one-token decode steps. Which is faster differs between
CPUs, so it is timed here at start-up rather than assumed."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


CACHE_FILE = Path(os.environ.get("LLM42_CACHE", Path.home() / ".cache" / "llm42")) / "kernels.json"


@dataclass
class Kernels:
    prefill_onednn: bool = True
    decode_onednn: bool = True
    note: str = "PyTorch defaults"

    def use(self, tokens: int) -> None:
        """Set oneDNN for a forward pass over `tokens` new tokens."""
        want = self.decode_onednn if tokens == 1 else self.prefill_onednn
        if torch._C._get_mkldnn_enabled() != want:
            torch._C._set_mkldnn_enabled(want)


def _time(weights: list[torch.Tensor], rows: int, onednn: bool) -> float:
    xs = [torch.randn(rows, w.shape[1], dtype=w.dtype) for w in weights]
    before = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(onednn)
    try:
        with torch.inference_mode():
            t = time.perf_counter()
            for x, w in zip(xs, weights):
                F.linear(x, w)
            return time.perf_counter() - t
    finally:
        torch._C._set_mkldnn_enabled(before)


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform says."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _key(model: nn.Module, weights: list[torch.Tensor]) -> str:
    cpu = cpu_name()
    shapes = sorted({tuple(w.shape) for w in weights})
    return f"{cpu}|{torch.__version__}|{torch.get_num_threads()}|{model.dtype}|{len(weights)}|{shapes}"


def keep_freed_memory() -> None:
    """Let glibc reuse freed blocks instead of returning them to the OS.

    By default a block over a few MB is mmap-ed fresh and unmapped on free, so every prefill
    page-faults its activations (and the dequantized weights of int8/int4 layers) in anew:
    that made the first prompt of a quantized model take 3.0 s instead of 0.8 s."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 512 * 1024**2)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 1024**2)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


def tune(model: nn.Module, cache_file: Path | None = CACHE_FILE) -> Kernels:
    """Time oneDNN on and off: a decode step's matmuls over all the model's Linear weights (streamed from
    memory as in a real step, not from cache), and a 16-token prefill chunk on the largest one.
    The answer is kept per CPU, torch version and model shape, so later starts skip the timing."""
    if model.device.type != "cpu":
        return Kernels()
    keep_freed_memory()
    if model.dtype not in (torch.bfloat16, torch.float16) or not torch.backends.mkldnn.is_available():
        return Kernels()
    weights = [m.weight.detach() for m in model.modules() if type(m) is nn.Linear]
    if not weights:
        return Kernels()
    key = _key(model, weights)
    known = _load(cache_file)
    if key in known:
        return Kernels(**known[key])
    _time(weights, 1, True)  # first touch of every weight: paid here instead of by the first token
    decode = {True: [], False: []}
    for on in (True, False, True, False):  # alternating is fair to both
        decode[on].append(_time(weights, 1, on))
    d = {on: min(v) for on, v in decode.items()}
    big = [max(weights, key=lambda w: w.numel())]
    p = {on: min(_time(big, 16, on), _time(big, 16, on)) for on in (True, False)}
    k = Kernels(p[True] <= p[False], d[True] <= d[False])
    k.note = (f"decode {'oneDNN' if k.decode_onednn else 'ATen'} ({d[True] * 1e3:.0f} vs {d[False] * 1e3:.0f} ms "
              f"per step's matmuls), prefill {'oneDNN' if k.prefill_onednn else 'ATen'} "
              f"({p[True] * 1e3:.1f} vs {p[False] * 1e3:.1f} ms per 16 tokens on one layer); measured on this machine")
    known[key] = asdict(k)
    _save(cache_file, known)
    return k


def _load(path: Path | None) -> dict:
    try:
        return json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        return {}


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
