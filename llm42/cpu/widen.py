"""bf16 weights on a CPU without bf16 arithmetic (AVX2 laptops): half the memory of fp32, and the right kernel
for each phase. A one-token step reads the bf16 weights as they are (PyTorch's ATen kernel and llm42's widen
them in registers: 2.9 ms against fp32's 10.3 ms for four 5632x2048 weights, forced AVX2 on a Zen 4). A
prefill of many rows widens each weight to fp32 and runs the fp32 matmul, which has FMA kernels there: 200
rows took 180 ms that way against 409 ms through PyTorch's bf16 matmul."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import native
from .flags import cpu_supports_bf16

WIDEN_ROWS = 64  # below this, the bf16 matmul costs less than widening the weight (34 vs 80 ms at 16 rows)


def needed() -> bool:
    """True on a CPU whose bf16 matmuls are emulated (no AVX512-BF16, AMX or Arm bf16)."""
    return not cpu_supports_bf16()


def widened(w: torch.Tensor) -> torch.Tensor:
    if w.is_contiguous() and native.library() is not None:
        return native.widen_bf16(w)
    return w.float()


def linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear for bf16 x and w, through fp32 for many rows where the CPU has no bf16 arithmetic."""
    if w.dtype != torch.bfloat16 or w.device.type != "cpu" or x.numel() < WIDEN_ROWS * w.shape[1] or not needed():
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
