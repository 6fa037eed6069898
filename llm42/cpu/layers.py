"""The quantized layer types the CPU runs: int8 per channel and int4 per group of 32, each supplying its own
product for decode steps (llm42's C kernels where they are built, else PyTorch's)."""

from __future__ import annotations

import torch
from torch import nn

from . import native, widen

# From this many tokens on, a layer dequantizes its weight to bf16 and uses the bf16 matmul: where the CPU has bf16
# arithmetic (AVX512-BF16, AMX), from ~32 rows (unpacking a weight and one bf16 matmul then cost about as much as the
# int8/int4 kernels' rows). Without it (AVX2), the bf16 matmul goes through fp32 and the integer kernels stay ahead
# to ~512 rows. The figures: README, Speed.
PREFILL_ROWS = 32
WIDE_PREFILL_ROWS = 512


def prefill_rows() -> int:
    """The rows from which a quantized layer's product dequantizes its weight on this CPU."""
    return WIDE_PREFILL_ROWS if widen.needed() and native.library() is not None else PREFILL_ROWS


def _for_prefill(layer) -> torch.Tensor:
    """A quantized layer's weight as bf16 for one many-row product, in the scratch buffer (valid until the next)."""
    return layer.dequantize(out=widen.scratch((layer.out_features, layer.in_features), torch.bfloat16))


class Quantized(nn.Module):
    """What the quantized layers share: their saved tensors are their buffers (a bias only where there is one)."""

    def export(self) -> dict[str, torch.Tensor]:
        return {name: t for name, t in self.named_buffers(recurse=False) if t is not None}


class Int8Linear(Quantized):
    """y = x W^T with W int8 [out, in] and a bf16 scale per output channel; activations stay bf16."""

    def __init__(self, qweight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("qweight", qweight)
        self.register_buffer("scales", scales.to(torch.bfloat16))
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        w = linear.weight.detach().float()
        scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-8)
        q = (w / scales[:, None]).round_().clamp_(-127, 127).to(torch.int8)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        return cls(q, scales, bias)

    def dequantize(self, dtype: torch.dtype = torch.bfloat16, out: torch.Tensor | None = None) -> torch.Tensor:
        """The weight as `dtype` [out, in] (bf16: into `out` if given, as a prefill's product does)."""
        if dtype == torch.bfloat16 and self.qweight.is_contiguous() and native.library() is not None:
            return native.dequant_int8(self.qweight, self.scales, out)  # the same numbers, in one pass
        return self.qweight.to(dtype) * self.scales.to(dtype)[:, None]

    def product(self, own: bool = False):
        """x [m, in] bf16 -> [m, out] for a few rows: llm42's kernel (`own`, x rounded per block of 32) or
        PyTorch's int8 weight matmul (exact x)."""
        q, s, b = self.qweight, self.scales, self.bias
        if own and native.library() is not None:
            mm = native.kernel(lambda x: native.gemm_int8(q, s, x), native.INT8, q, s)
        else:
            mm = lambda x: torch._weight_int8pack_mm(x, q, s)
        return mm if b is None else (lambda x: mm(x) + b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)
        if x2.shape[0] >= prefill_rows():
            y = widen.linear(x2, _for_prefill(self))
            if self.bias is not None:
                y = y + self.bias
        else:  # a short prompt: as a verify pass runs its rows (llm42's kernel, ~2x PyTorch's for 2-31 rows on AVX2)
            y = self.product(own=True)(x2.contiguous())
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


def _group_size(k: int) -> int | None:
    return next((g for g in (32, 64, 128) if k % g == 0), None)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Codes 0-15 [n, k] -> llm42's int4 layout [n, k/2] uint8: per block of 32 inputs 16 bytes, byte j holding
    input j (low nibble) and input 16 + j (high nibble). One layout on every CPU; PyTorch's own packing differs
    between its AVX2 and AVX512 builds, so it is made only where PyTorch's kernel runs, never saved or read."""
    n, k = q.shape
    blocks = q.to(torch.uint8).reshape(n, k // 32, 2, 16)
    return (blocks[:, :, 0] | (blocks[:, :, 1] << 4)).reshape(n, k // 2)


def pack_scales(d: torch.Tensor, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per row its unit d [n] (fp32) and per group s [n, groups] (1-255) and z (-128..127) -> llm42's int4 scales
    [n, 4 + 2 groups] bytes: d's four bytes, then (s, z) per group."""
    n = s.shape[0]
    pairs = torch.stack([s.to(torch.uint8), z.to(torch.int8).view(torch.uint8)], -1).reshape(n, -1)
    return torch.cat([d.float().reshape(n, 1).contiguous().view(torch.uint8), pairs], 1).contiguous()


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """llm42's int4 layout [n, k/2] -> codes 0-15 [n, k] uint8."""
    n = packed.shape[0]
    p = packed.reshape(n, -1, 16)
    return torch.cat([p & 0xF, p >> 4], dim=-1).reshape(n, -1)


class Int4Linear(Quantized):
    """y = x W^T with W in 4 bits: w = (q - 8 + z / 16) * scale per group of `group` input channels, scale = d * s.

    Kept in llm42's layout, which llm42's C kernels read (kernels.c): `qweight` [out, in/2] codes, `scales` [out,
    4 + 2 * in/group] bytes, per row its scale unit d (fp32) and per group s (uint8: its scale in units of d) and z
    (int8: its zero in sixteenths of its scale): 4.5 bits a weight in groups of 32, where a bf16 scale and zero per
    group took 5 (SmolLM2's perplexity +0.35 % against fp32, +0.50 % before). Without the kernels,
    PyTorch's int4 kernel runs on its own packing, made here from the same codes."""

    def __init__(self, qweight: torch.Tensor, scales: torch.Tensor, group: int, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features, self.group = qweight.shape[0], qweight.shape[1] * 2, group
        self.register_buffer("qweight", qweight)
        self.register_buffer("scales", scales)
        self.register_buffer("bias", bias)
        self._torch_packed: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int4Linear | nn.Linear:
        n, k = linear.weight.shape
        g = _group_size(k)
        if g is None or n % 64:
            return linear  # no group size fits: keep this layer as it is
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        return cls.from_weight(linear.weight.detach().float(), g, bias)

    @classmethod
    def from_weight(cls, weight: torch.Tensor, g: int, bias: torch.Tensor | None = None) -> Int4Linear:
        """Quantize an fp32 weight [n, k] in groups of g: each group's range [lo, hi] in 15 steps of its scale,
        the scale rounded up to a whole number of the row's unit d (the largest scale / 255), the zero to a
        sixteenth of the scale, then the codes against those rounded numbers. The codes' window starts at
        scale * (z / 16 - 8), between -16 and -1/16 scales: a group that does not straddle zero (all weights above
        it, or far below it) takes the larger scale that reaches it (at most hi / 14.9375, -lo / 16), so no weight
        moves by more than half a scale."""
        n, k = weight.shape
        w = weight.reshape(n, k // g, g)
        lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        scale = torch.maximum((hi - lo) / 15, torch.maximum(-lo / 16, hi / 14.9375)).clamp(min=1e-8)  # [n, k/g, 1]
        d = scale.amax(1, keepdim=True) / 255
        s = torch.ceil(scale / d).clamp_(1, 255)
        scale = d * s
        z = torch.floor(16 * (lo / scale + 8)).clamp_(-128, 127)
        q = ((w - scale * (z * 0.0625)) / scale + 8).round_().clamp_(0, 15).reshape(n, k)
        return cls(pack_int4(q), pack_scales(d.reshape(n), s[..., 0], z[..., 0]), g, bias)

    def unpacked(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, zero) per group as fp32 [out, in/group], as the kernels compute them: scale = d * s, zero =
        z / 16 in units of the scale."""
        d = self.scales[:, :4].contiguous().view(torch.float32)  # [n, 1]
        pairs = self.scales[:, 4:]
        return d * pairs[:, 0::2].float(), pairs[:, 1::2].contiguous().view(torch.int8).float() * 0.0625

    def dequantize(self, dtype: torch.dtype = torch.bfloat16, out: torch.Tensor | None = None) -> torch.Tensor:
        """The weight as `dtype` [out, in] (bf16: into `out` if given, as a prefill's product does): (q - 8 + z / 16)
        * scale in fp32, rounded once."""
        n, k, g = self.out_features, self.in_features, self.group
        if dtype == torch.bfloat16 and native.library() is not None:
            return native.dequant_int4(self.qweight, self.scales, g, out)  # the same numbers, in one pass
        scale, zero = self.unpacked()
        q = unpack_int4(self.qweight).reshape(n, k // g, g).float()
        return ((q - 8 + zero[..., None]) * scale[..., None]).reshape(n, k).to(dtype)

    def torch_packed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """PyTorch's packing of these codes and its [in/group, out, 2] bf16 (scale, zero), made on first use and
        only for PyTorch's own int4 kernel (its layout depends on the CPU PyTorch runs on)."""
        if self._torch_packed is None:
            codes = unpack_int4(self.qweight).to(torch.int32)
            scale, zero = self.unpacked()
            sz = torch.stack([scale, scale * zero], -1).to(torch.bfloat16)  # PyTorch's: (q - 8) * scale + zero
            self._torch_packed = (
                torch._convert_weight_to_int4pack_for_cpu(codes, 1),
                sz.transpose(0, 1).contiguous(),
            )
        return self._torch_packed

    def product(self, own: bool = False):
        """x [m, in] bf16 -> [m, out] for a few rows: llm42's kernel where it is built (x rounded per block of
        32), else PyTorch's on its own packing."""
        if native.library() is not None:
            q, sz, g = self.qweight, self.scales, self.group
            mm = native.kernel(lambda x: native.gemm_int4(q, sz, g, x), native.INT4, q, sz, g)
        else:
            (packed, sz), g = self.torch_packed(), self.group
            mm = lambda x: torch._weight_int4pack_mm_for_cpu(x, packed, g, sz)
        b = self.bias
        return mm if b is None else (lambda x: mm(x) + b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)
        if x2.shape[0] >= prefill_rows():
            y = widen.linear(x2, _for_prefill(self))
            if self.bias is not None:
                y = y + self.bias
        else:
            y = self.product()(x2.contiguous())
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
