"""bf16 weights two rows interleaved, for llm42's products on a CPU with bf16 arithmetic (AVX512-BF16), where rows
are short (SmolLM2's 576 and 1,536 inputs): a verify pass's rows then share each load of x between two weight rows
while the weights still stream in memory order (kernels.c: llm42_gemm_pairs, for the figures). Made at load time,
in place of the row-major weight (no second copy), where the tuning gave the bf16 products to llm42's kernels; a
prompt of many rows lays a weight out row-major again in a scratch buffer for PyTorch's matmul. The state dict is
the plain weight, so a saved model is as before."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import native
from .laid import LaidLinear, TiedEmbedding, lay_out
from .memory import huge_empty
from .widen import scratch

PROMPT_ROWS = 10  # from this many rows on (more than a verify pass has), PyTorch's bf16 matmul over the weight
# laid out row-major again
TILE = 4096  # weight rows laid out again at a time (even)


def wanted(n: int, k: int) -> bool:
    """Whether the built kernels lay out a weight [n, k] in pairs."""
    return native.library() is not None and bool(native.library().llm42_bf16_pairs(n, k))


def pack_pairs(w: torch.Tensor) -> torch.Tensor:
    """W [n, k] bf16 as pairs [n / 2, k / 32, 2, 32]: chunk c of row 2p + a at [p, c, a]."""
    n, k = w.shape
    out = huge_empty((n // 2, k // 32, 2, 32), torch.bfloat16)  # kept: in huge pages from the start (cpu/memory.py)
    return out.copy_(w.reshape(n // 2, 2, k // 32, 32).transpose(1, 2))


def unpack_pairs(pairs: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Pairs back as W [n, k] bf16 (into `out` if given)."""
    p, c = pairs.shape[:2]
    out = torch.empty(2 * p, 32 * c, dtype=torch.bfloat16) if out is None else out
    out.view(p, 2, c, 32).copy_(pairs.transpose(1, 2))
    return out


def gemm_pairs(pairs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x [m, k] bf16 (contiguous) @ W^T for W in pairs; y [m, n] bf16, each row the bits of the row-major product."""
    p, c = pairs.shape[:2]
    y = torch.empty(x.shape[0], 2 * p, dtype=torch.bfloat16)
    native.library().llm42_gemm_pairs(pairs.data_ptr(), x.data_ptr(), y.data_ptr(), x.shape[0], 2 * p, 32 * c)
    return y


class PairLinear(LaidLinear):
    """A bf16 linear layer without bias whose weight is kept in pairs."""

    kind = "Linear"  # what the tuning measured and keeps its choice under (the same weights)
    few = PROMPT_ROWS

    def __init__(self, weight: torch.Tensor):
        super().__init__(weight)
        self.register_buffer("pairs", pack_pairs(weight.detach().contiguous()), persistent=False)

    def product(self, own: bool = True):
        """x [m, in] bf16 -> [m, out]: the pair kernel, each row the same bits whatever m is."""
        pairs = self.pairs
        return native.kernel(lambda x: gemm_pairs(pairs, x.contiguous()), native.BF16_PAIRS, pairs)

    def kernel(self, x: torch.Tensor) -> torch.Tensor:
        return gemm_pairs(self.pairs, x)

    def many(self, x: torch.Tensor) -> torch.Tensor:
        """TILE rows at a time: a tied head of 49,152 rows laid out again whole would keep 56 MB of scratch."""
        y = torch.empty(x.shape[0], self.out_features, dtype=torch.bfloat16)
        for t in range(0, self.out_features, TILE):
            rows = min(TILE, self.out_features - t)
            room = scratch((rows, self.in_features), torch.bfloat16)  # shared with the prefill's other products
            y[:, t : t + rows] = F.linear(x, unpack_pairs(self.pairs[t // 2 : (t + rows) // 2], room))
        return y

    def plain(self) -> torch.Tensor:
        return unpack_pairs(self.pairs)


class PairEmbedding(TiedEmbedding):
    """An input embedding whose table is an output head's pairs: a token's row is gathered from its pair."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = self.tied[0].pairs[ids // 2, :, ids % 2]  # [*ids.shape, k / 32, 32], a copy
        return rows.reshape(*ids.shape, self.embedding_dim)


def pair(model: nn.Module) -> int:
    """Turn every bf16 nn.Linear without bias whose shape the kernels lay out in pairs into a PairLinear, in place;
    how many (an embedding tied to one reads its rows from the pairs: cpu/laid.lay_out)."""

    def wants(m: nn.Module) -> bool:
        if type(m) is not nn.Linear or m.bias is not None or m.weight.dtype != torch.bfloat16:
            return False
        return m.weight.device.type == "cpu" and wanted(*m.weight.shape)

    return lay_out(model, wants, PairLinear, PairEmbedding)
