"""bf16 weights on a CPU without bf16 arithmetic (AVX2 laptops): half the memory of fp32, and the right kernel
for each phase. A one-token step, and a prompt of a few tokens, read the bf16 weights as they are (llm42's kernels
widen them in registers, each weight row read once for all rows; PyTorch's bf16 matmul there costs ~3x as much). A
prompt of many rows widens each weight to fp32 and runs the fp32 matmul, which has FMA kernels there. The README's
Speed section has the figures."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import native
from .flags import cpu_supports_bf16

WIDEN_ROWS = 48  # from this many rows on, widening the weight costs less than llm42's several-row bf16 product


def needed() -> bool:
    """True on a CPU whose bf16 matmuls are emulated (no AVX512-BF16, AMX or Arm bf16)."""
    return not cpu_supports_bf16()


_scratch: dict[torch.dtype, torch.Tensor] = {}


def scratch(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A buffer for a weight widened or dequantized for one product, the same memory from one product to the next
    (each in turn, on the thread that runs the model): a fresh one per product spent more on page faults than the
    conversion took (a 71-token prompt of the 1.3B shape on AVX2: 2.8 s widening, most of it faulting in 5 GB)."""
    n = math.prod(shape)
    buf = _scratch.get(dtype)
    if buf is None or buf.numel() < n:
        buf = _scratch[dtype] = torch.empty(n, dtype=dtype)
    return buf[:n].view(shape)


def widened(w: torch.Tensor) -> torch.Tensor:
    """`w` as fp32, in the scratch buffer: valid until the next product."""
    if w.is_contiguous() and native.library() is not None:
        return native.widen_bf16(w, scratch(w.shape, torch.float32))
    return w.float()


def linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear for bf16 x and w where the CPU has no bf16 arithmetic: llm42's several-row product for a few rows,
    through fp32 for many."""
    if w.dtype != torch.bfloat16 or w.device.type != "cpu" or not needed():
        return F.linear(x, w, bias)
    rows = x.numel() // w.shape[1]
    if rows < WIDEN_ROWS:
        if bias is None and w.is_contiguous() and native.library() is not None:
            return native.gemm_bf16(w, x.reshape(rows, -1).contiguous()).view(*x.shape[:-1], w.shape[0])
        return F.linear(x, w, bias)
    y = F.linear(x.float(), widened(w), None if bias is None else bias.float())
    return y.to(x.dtype)


class WideLinear(nn.Linear):
    """An nn.Linear whose many-row products go through fp32 (see `linear`); same weights, same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def widen_prefill(model: nn.Module) -> int:
    """Turn every bf16 nn.Linear of a CPU model into a WideLinear, in place, where the CPU needs it; how many."""
    if not needed() or model.device.type != "cpu":
        return 0
    layers = [m for m in model.modules() if type(m) is nn.Linear and m.weight.dtype == torch.bfloat16]
    for m in layers:
        m.__class__ = WideLinear
    return len(layers)
