"""Per-phase kernel choice on the CPU, measured on this machine with the model's own weights.

PyTorch sends bf16 matmuls to oneDNN by default. That is what makes prefill fast (AMX, AVX512-BF16),
but on some CPUs oneDNN is the slower path for one-token decode steps. Which is faster differs between
CPUs, so it is timed here at start-up rather than assumed."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


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


def _best_of(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _time(weight: torch.Tensor, rows: int, onednn: bool, reps: int) -> float:
    x = torch.randn(rows, weight.shape[1], dtype=weight.dtype)
    before = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(onednn)
    try:
        with torch.inference_mode():
            return _best_of(lambda: F.linear(x, weight), reps)
    finally:
        torch._C._set_mkldnn_enabled(before)


def tune(model: nn.Module) -> Kernels:
    """Time oneDNN on and off for a decode step and a prefill chunk on the model's largest hidden Linear."""
    if model.device.type != "cpu" or model.dtype not in (torch.bfloat16, torch.float16) or not torch.backends.mkldnn.is_available():
        return Kernels()
    out = model.get_output_embeddings()
    linears = [m for m in model.modules() if type(m) is nn.Linear and m is not out]
    if not linears:
        return Kernels()
    w = max(linears, key=lambda m: m.weight.numel()).weight.detach()
    decode = {on: _time(w, 1, on, 7) for on in (True, False)}
    prefill = {on: _time(w, 64, on, 2) for on in (True, False)}
    k = Kernels(prefill[True] <= prefill[False], decode[True] <= decode[False])
    k.note = (f"decode {'oneDNN' if k.decode_onednn else 'ATen'} ({decode[True] * 1e3:.2f} vs {decode[False] * 1e3:.2f} ms), "
              f"prefill {'oneDNN' if k.prefill_onednn else 'ATen'} ({prefill[True] * 1e3:.1f} vs {prefill[False] * 1e3:.1f} ms)")
    return k
