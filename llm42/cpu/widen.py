"""bf16 weights on a CPU without bf16 arithmetic (AVX2 laptops): half the memory of fp32, and the right kernel
for each phase. A one-token step, and a prompt of a few tokens, read the bf16 weights as they are (llm42's kernels
widen them in registers, each weight row read once for all rows; PyTorch's bf16 matmul there costs ~3x as much). A
prompt of many rows widens each weight to fp32 and runs the fp32 matmul, which has FMA kernels there. Where
llm42's kernels do the products, the weights are kept in the panels of 16 rows they read fastest (PanelLinear).
The README's Speed section has the figures."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import native
from .flags import cpu_supports_bf16
from .laid import LaidLinear, TiedEmbedding, lay_out
from .memory import huge_empty

WIDEN_ROWS = 48  # from this many rows on, widening the weight costs less than llm42's several-row bf16 product


def needed() -> bool:
    """True on a CPU whose bf16 matmuls are emulated (no AVX512-BF16, AMX or Arm bf16)."""
    return not cpu_supports_bf16()


_scratch: dict[torch.dtype, torch.Tensor] = {}


def scratch(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A buffer for a weight widened or dequantized for one product, the same memory from one product to the next
    (each in turn, on the thread that runs the model): a fresh one per product spent more on page faults than the
    conversion took (a 71-token prompt of the 1.3B shape on AVX2: 2.8 s widening, most of it faulting in 5 GB).
    Made outside inference mode whatever the caller's mode: made inside it (the chat's prefill), PyTorch could not
    write it outside (a caller that is not the chat)."""
    n = math.prod(shape)
    buf = _scratch.get(dtype)
    if buf is None or buf.numel() < n:
        with torch.inference_mode(False):
            buf = _scratch[dtype] = torch.empty(n, dtype=dtype)
    return buf[:n].view(shape)


TILE = 256  # weight rows widened at a time for a prompt (a multiple of 16: whole panels)
TILED_ROWS = 512  # from this many rows on, the whole weight at once (its matmul then outruns the tiles')


def tiled(x: torch.Tensor, n: int, tile) -> torch.Tensor:
    """x [m, k] fp32 @ W^T for a bf16 W [n, k] given as fp32 TILE rows at a time by `tile(t, rows)` ([rows, k], any
    strides, valid until the next call): y [m, n] fp32. Each tile (2-6 MB) is still in the L3 when the matmul reads
    it; widening the whole weight first sent twice its bytes out to memory and back (0.5 s of a 200-token prompt of
    the 1.3B shape on a Zen 3; the matmul's results the same to the bit). From TILED_ROWS rows on the matmul's own
    blocking wins (one 5632x2048 weight, ms whole / tiles: 200 rows 41 / 35, 512 rows 76 / 75, 1,024 rows 144 /
    154), and the whole weight is widened at once as before."""
    if x.shape[0] >= TILED_ROWS:
        return F.linear(x, tile(0, n))
    y = torch.empty(n, x.shape[0], dtype=torch.float32)
    for t in range(0, n, TILE):
        rows = min(TILE, n - t)
        torch.mm(tile(t, rows), x.t(), out=y[t : t + rows])
    return y.t()


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
    x2, n, k = x.reshape(rows, -1).float(), w.shape[0], w.shape[1]
    if w.is_contiguous() and native.library() is not None:
        y = tiled(x2, n, lambda t, r: native.widen_bf16(w[t : t + r], scratch((r, k), torch.float32)))
    else:
        y = F.linear(x2, w.float())
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype, memory_format=torch.contiguous_format).view(*x.shape[:-1], n)


class WideLinear(nn.Linear):
    """An nn.Linear whose many-row products go through fp32 (see `linear`); same weights, same state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def panel() -> int:
    """How many rows the built kernels want bf16 weights interleaved in (kernels.c: 16 on AVX2 without bf16
    arithmetic), 0 where they read them row-major; 0 without the kernels."""
    return 0 if native.library() is None else native.library().llm42_bf16_panel()


def pack_bf16(w: torch.Tensor) -> torch.Tensor:
    """W [n, k] bf16 (contiguous, n a multiple of 16) in panels of 16 rows: [n / 16, k, 16]."""
    n, k = w.shape
    out = huge_empty((n // 16, k, 16), torch.bfloat16)  # kept: in huge pages from the start (cpu/memory.py)
    native.library().llm42_pack_bf16(w.data_ptr(), out.data_ptr(), n, k)
    return out


def unpack_bf16(panels: torch.Tensor) -> torch.Tensor:
    """Panels [n / 16, k, 16] back as W [n, k] bf16."""
    p, k, _ = panels.shape
    out = torch.empty(p * 16, k, dtype=torch.bfloat16)
    native.library().llm42_unpack_bf16(panels.data_ptr(), out.data_ptr(), p * 16, k)
    return out


def widen_bf16p(panels: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Panels [n / 16, k, 16] as W [n, k] fp32, written into `out` ([k, n], contiguous) as W^T: W is the
    transposed view returned (a matmul reads it as it is)."""
    p, k, _ = panels.shape
    native.library().llm42_widen_bf16p(panels.data_ptr(), out.data_ptr(), p * 16, k)
    return out.t()


def gemm_bf16p(panels: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x [m, k] bf16 (contiguous) @ W^T for W in panels [n / 16, k, 16]; y [m, n] bf16, each row the same bits
    whatever m is."""
    p, k, _ = panels.shape
    y = torch.empty(x.shape[0], p * 16, dtype=torch.bfloat16)
    native.library().llm42_gemm_bf16p(panels.data_ptr(), x.data_ptr(), y.data_ptr(), x.shape[0], p * 16, k)
    return y


class PanelLinear(LaidLinear):
    """A bf16 linear layer without bias whose weight is kept in llm42's panels of 16 rows (kernels.c), the layout
    its several-row product reads fastest on a CPU without bf16 arithmetic; made at load time from a WideLinear
    whose products the tuning gave to llm42's kernels (`pack`), in place of its weight (no second copy). Its
    state dict is the plain weight, so a saved model is as before."""

    kind = "WideLinear"  # what the tuning measured and keeps its choice under (the same weights)
    few = WIDEN_ROWS

    def __init__(self, weight: torch.Tensor):
        super().__init__(weight)
        self.register_buffer("panels", pack_bf16(weight.detach().contiguous()), persistent=False)

    def product(self, own: bool = True):
        """x [m, in] bf16 -> [m, out]: the panel kernel, each row the same bits whatever m is."""
        panels = self.panels
        return native.kernel(lambda x: gemm_bf16p(panels, x.contiguous()), native.BF16_PANELS, panels)

    def kernel(self, x: torch.Tensor) -> torch.Tensor:
        return gemm_bf16p(self.panels, x)

    def many(self, x: torch.Tensor) -> torch.Tensor:
        """In fp32, the weight widened TILE rows at a time (tiled)."""
        k, panels = self.in_features, self.panels

        def tile(t: int, r: int) -> torch.Tensor:
            return widen_bf16p(panels[t // 16 : (t + r) // 16], scratch((k, r), torch.float32))

        return tiled(x.float(), self.out_features, tile).to(torch.bfloat16, memory_format=torch.contiguous_format)

    def plain(self) -> torch.Tensor:
        return unpack_bf16(self.panels)


class PanelEmbedding(TiedEmbedding):
    """An input embedding whose table is an output head's panels: a token's row is gathered from its panel."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        r = ids % 16  # row r of a panel is lane r (rows 0-7, low halves) or 8 + r (rows 8-15, high halves)
        return self.tied[0].panels[ids // 16, :, (r % 8) * 2 + r // 8]  # [*ids.shape, dim], a copy


def pack(model: nn.Module) -> int:
    """Turn every WideLinear without bias whose rows come in 16s into a PanelLinear, in place, where the built
    kernels want panels; how many (an embedding tied to one reads its rows from the panels: cpu/laid.lay_out)."""
    if panel() != 16:
        return 0

    def wants(m: nn.Module) -> bool:
        return type(m) is WideLinear and m.bias is None and m.weight.shape[0] % 16 == 0

    return lay_out(model, wants, PanelLinear, PanelEmbedding)


def widen_prefill(model: nn.Module) -> int:
    """Turn every bf16 nn.Linear of a CPU model into a WideLinear, in place, where the CPU needs it; how many."""
    if not needed() or model.device.type != "cpu":
        return 0
    layers = [m for m in model.modules() if type(m) is nn.Linear and m.weight.dtype == torch.bfloat16]
    for m in layers:
        m.__class__ = WideLinear
    return len(layers)
