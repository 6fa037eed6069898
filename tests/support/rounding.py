"""How far llm42's bf16 kernels may be from exact arithmetic: bounds from the rounding they do."""

import torch

BF16 = 2**-8  # rounding to bf16 (8 significant bits) moves a value by at most this much of itself


def accumulation(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A bound on fp32 summation error of each row of w @ x: k * 2^-24 * sum |w x| (any order)."""
    return w.shape[1] * 2**-24 * (w.abs().float() @ x.abs().float().T).T
