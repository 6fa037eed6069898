"""Weight-only quantization of the Linear layers for CPU decoding: int8 (per channel) and int4 (per group).

Activations stay bf16. int8 keeps one scale per output channel (PyTorch's int8 weight matmul);
int4 keeps a scale and offset per group of 32 input channels (in llm42's own packing, the same on every CPU;
gpt-fast's scheme), with the output layer in int8. Layers are replaced one at a time, and from a
safetensors folder they are read one at a time, so the full-precision model is never in memory.

Activation-quantized int8 (fbgemm's dynamic matmul) was faster here but raised SmolLM2's perplexity
by 73 %: outlier activations do not survive one scale per tensor. Weight-only keeps it under 0.5 %."""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from torch import nn

from . import native, widen



# From this many tokens on, a layer dequantizes its weight to bf16 and uses the bf16 matmul (oneDNN):
# the int8/int4 kernels are built for one-token steps and cost time per row, while unpacking a
# 2048x5632 weight and one bf16 matmul cost about as much as 20 rows of PyTorch's int8 kernel or 32 rows of
# llm42's int4 kernel (2.9 ms per 16 rows against 6 ms for dequantizing, 2-core AVX512 CPU).
PREFILL_ROWS = {"int8": 32, "int4": 32}


class Int8Linear(nn.Module):
    """y = x W^T with W int8 [out, in] and a bf16 scale per output channel; activations stay bf16."""

    def __init__(self, qweight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = qweight.shape
        self.register_buffer("qweight", qweight)
        self.register_buffer("scales", scales.to(torch.bfloat16))
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        w = linear.weight.detach().float()
        scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-8)
        q = (w / scales[:, None]).round_().clamp_(-127, 127).to(torch.int8)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        return cls(q, scales, bias)

    def export(self) -> dict[str, torch.Tensor]:
        out = {"qweight": self.qweight, "scales": self.scales}
        if self.bias is not None:
            out["bias"] = self.bias
        return out

    def dequantize(self, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        if dtype == torch.bfloat16 and self.qweight.is_contiguous() and native.library() is not None:
            return native.dequant_int8(self.qweight, self.scales)  # the same numbers, in one pass
        return self.qweight.to(dtype) * self.scales.to(dtype)[:, None]

    def product(self, own: bool = False):
        """x [m, in] bf16 -> [m, out] for a few rows: llm42's kernel (`own`, x rounded per block of 32) or
        PyTorch's int8 weight matmul (exact x)."""
        q, s, b = self.qweight, self.scales, self.bias
        mm = (lambda x: native.gemm_int8(q, s, x)) if own and native.library() is not None else \
            (lambda x: torch._weight_int8pack_mm(x, q, s))
        return mm if b is None else (lambda x: mm(x) + b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)
        if x2.shape[0] >= PREFILL_ROWS["int8"]:
            y = widen.linear(x2, self.dequantize())
        else:
            y = torch._weight_int8pack_mm(x2, self.qweight, self.scales)
        if self.bias is not None:
            y = y + self.bias
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


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """llm42's int4 layout [n, k/2] -> codes 0-15 [n, k] uint8."""
    n = packed.shape[0]
    p = packed.reshape(n, -1, 16)
    return torch.cat([p & 0xF, p >> 4], dim=-1).reshape(n, -1)


class Int4Linear(nn.Module):
    """y = x W^T with W in 4 bits: w = (q - 8) * scale + zero per group of `group` input channels.

    Kept in llm42's layout (`qweight` [out, in/2], `scales_zeros` [out, in/group, 2] bf16), which llm42's C
    kernels read. Without them, PyTorch's int4 kernel runs on its own packing, made here from the same codes."""

    def __init__(self, qweight: torch.Tensor, scales_zeros: torch.Tensor, group: int, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features, self.group = qweight.shape[0], qweight.shape[1] * 2, group
        self.register_buffer("qweight", qweight)
        self.register_buffer("scales_zeros", scales_zeros)
        self.register_buffer("bias", bias)
        self._torch_packed: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int4Linear | nn.Linear":
        n, k = linear.weight.shape
        g = _group_size(k)
        if g is None or n % 64:
            return linear  # no group size fits: keep this layer as it is
        w = linear.weight.detach().float().reshape(n, k // g, g)
        lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        scale = ((hi - lo) / 15).clamp(min=1e-8)
        q = ((w - lo) / scale).round_().clamp_(0, 15).reshape(n, k)
        zeros = lo + 8 * scale  # the kernels compute (q - 8) * scale + zero
        sz = torch.cat([scale, zeros], -1).to(torch.bfloat16)  # [n, k/g, 2]
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        return cls(pack_int4(q), sz, g, bias)

    def export(self) -> dict[str, torch.Tensor]:
        out = {"qweight": self.qweight, "scales_zeros": self.scales_zeros}
        if self.bias is not None:
            out["bias"] = self.bias
        return out

    def dequantize(self, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
        n, k, g = self.out_features, self.in_features, self.group
        if dtype == torch.bfloat16 and native.library() is not None:
            return native.dequant_int4(self.qweight, self.scales_zeros, g)  # the same numbers, in one pass
        q = unpack_int4(self.qweight).reshape(n, k // g, g).to(dtype)
        scale, zero = self.scales_zeros.to(dtype).unsqueeze(-2).unbind(-1)  # [n, k/g, 1]
        return q.mul_(scale).add_(zero - 8 * scale).reshape(n, k)  # in place, contiguous: 3x faster

    def torch_packed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """PyTorch's packing of these codes and its [in/group, out, 2] scales, made on first use and only for
        PyTorch's own int4 kernel (its layout depends on the CPU PyTorch runs on)."""
        if self._torch_packed is None:
            codes = unpack_int4(self.qweight).to(torch.int32)
            self._torch_packed = (torch._convert_weight_to_int4pack_for_cpu(codes, 1),
                                  self.scales_zeros.transpose(0, 1).contiguous())
        return self._torch_packed

    def product(self, own: bool = False):
        """x [m, in] bf16 -> [m, out] for a few rows: llm42's kernel where it is built (x rounded per block of
        32), else PyTorch's on its own packing."""
        if native.library() is not None:
            q, sz, g = self.qweight, self.scales_zeros, self.group
            mm = lambda x: native.gemm_int4(q, sz, g, x)  # noqa: E731
        else:
            (packed, sz), g = self.torch_packed(), self.group
            mm = lambda x: torch._weight_int4pack_mm_for_cpu(x, packed, g, sz)  # noqa: E731
        b = self.bias
        return mm if b is None else (lambda x: mm(x) + b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)
        if x2.shape[0] >= PREFILL_ROWS["int4"]:
            y = widen.linear(x2, self.dequantize())
            if self.bias is not None:
                y = y + self.bias
        else:
            y = self.product()(x2.contiguous())
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


KINDS = {"int8": Int8Linear, "int4": Int4Linear}


def kind_for(kind: str, is_output: bool) -> type:
    """The output layer stays int8 in int4 mode: it is the most sensitive layer (llama.cpp keeps it wider too)."""
    return Int8Linear if is_output else KINDS[kind]


def _linear_slots(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of each nn.Linear; the layers themselves are not held, so each can be freed."""
    return [(parent, name) for parent in model.modules()
            for name, child in parent.named_children() if type(child) is nn.Linear]


def quantize_model(model: nn.Module, kind: str) -> nn.Module:
    """Replace every nn.Linear by its quantized form, in place, one layer at a time."""
    out = model.get_output_embeddings()
    slots = _linear_slots(model)
    for parent, name in slots:
        layer = getattr(parent, name)
        setattr(parent, name, kind_for(kind, layer is out).from_linear(layer))  # the bf16 layer is freed here
    model.llm42_quantize = kind
    return model


def release_free_memory() -> None:
    """Hand the read buffers' freed heap back to the OS (glibc keeps it otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def skeleton(path: Path, dtype: torch.dtype):
    """The model with every tensor on the meta device: structure, no memory."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype), config


def place(model: nn.Module, prefix: str, module: nn.Module) -> None:
    parent, _, name = prefix.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def finish(model: nn.Module, config, path: Path, rest: dict[str, torch.Tensor], kind: str) -> nn.Module:
    from transformers import GenerationConfig

    model.load_state_dict(rest, strict=False, assign=True)
    for module in model.modules():  # non-persistent buffers (rotary frequencies) are recomputed
        if hasattr(module, "inv_freq") and any(b.is_meta for b in module.buffers(recurse=False)):
            with torch.device("cpu"):
                fresh = type(module)(config=config)
            for k, b in fresh.named_buffers(recurse=False):
                setattr(module, k, b)
    release_free_memory()
    left = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.is_meta]
    if left:
        raise ValueError(f"{path} lacks {len(left)} tensors (first: {left[0]})")
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path)
    model.llm42_quantize = kind
    return model.eval()


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() else t


def quantize_checkpoint(path: str | Path, kind: str, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Quantize straight from a safetensors folder, one Linear at a time: the full-precision
    model never exists in memory. Raises KeyError/ValueError when the names do not line up."""
    from .checkpoint import Checkpoint

    path = Path(path)
    model, config = skeleton(path, dtype)
    ckpt = Checkpoint(path)
    out = model.get_output_embeddings()
    embed_key = next((n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight), None)
    slots = [(prefix, m) for prefix, m in model.named_modules() if type(m) is nn.Linear]
    for prefix, meta in slots:
        key = f"{prefix}.weight"
        if key not in ckpt and meta is out and embed_key in ckpt:
            key = embed_key  # tied embeddings: the output layer shares the input table
        linear = nn.Linear(meta.in_features, meta.out_features, bias=meta.bias is not None, device="meta")
        linear.weight = nn.Parameter(ckpt.get(key), requires_grad=False)
        if meta.bias is not None:
            linear.bias = nn.Parameter(ckpt.get(f"{prefix}.bias"), requires_grad=False)
        q = kind_for(kind, meta is out).from_linear(linear)
        place(model, prefix, q.to(dtype) if type(q) is nn.Linear else q)  # int4 keeps layers no group fits
    done = tuple(f"{p}." for p, _ in slots)
    names = {n for n, _ in [*model.named_parameters(), *model.named_buffers()]}
    rest = {k: _as(ckpt.get(k), dtype) for k in ckpt.keys() if k in names and not k.startswith(done)}
    return finish(model, config, path, rest, kind)
