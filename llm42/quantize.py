"""Weight quantization of the Linear layers for CPU decoding: int8 (per channel) and int4 (per group).

int8 keeps int8 weights with one scale per output channel and quantizes activations on the fly
(PyTorch's x86/fbgemm dynamic-quantized matmul, VNNI). int4 keeps 4-bit weights with a scale and
offset per group of input channels (PyTorch's packed int4 matmul for CPU, as gpt-fast does).
Both replace layers one at a time, so peak memory stays at the bf16 model's."""

from __future__ import annotations

import ctypes
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch
from torch import nn

QUANT_FILE = "llm42_quant.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = 1


def _engine() -> None:
    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = "x86" if "x86" in engines else "fbgemm" if "fbgemm" in engines else "qnnpack"


class Int8Linear(nn.Module):
    """y = x W^T with W int8 [out, in] and a float scale per output channel."""

    def __init__(self, qweight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.in_features, self.out_features = qweight.shape[1], qweight.shape[0]
        q = torch._make_per_channel_quantized_tensor(qweight, scales.double(), torch.zeros_like(scales, dtype=torch.long), 0)
        self.packed = torch.ops.quantized.linear_prepack(q, None if bias is None else bias.float())

    @staticmethod
    def quantize(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = weight.float()
        scales = (w.abs().amax(dim=1) / 127).clamp(min=1e-8)
        return (w / scales[:, None]).round_().clamp_(-127, 127).to(torch.int8), scales

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int8Linear":
        q, scales = cls.quantize(linear.weight.detach())
        return cls(q, scales, None if linear.bias is None else linear.bias.detach())

    def export(self) -> dict[str, torch.Tensor]:
        q, bias = torch.ops.quantized.linear_unpack(self.packed)
        out = {"qweight": q.int_repr(), "scales": q.q_per_channel_scales().float()}
        if bias is not None:
            out["bias"] = bias
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.ops.quantized.linear_dynamic(x.reshape(-1, self.in_features).float(), self.packed)
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


def _group_size(k: int) -> int | None:
    return next((g for g in (128, 64, 32) if k % g == 0), None)


class Int4Linear(nn.Module):
    """y = x W^T with W in 4 bits: w = q * scale + min per group of `group` input channels."""

    def __init__(self, packed: torch.Tensor, scales_zeros: torch.Tensor, group: int, in_features: int,
                 bias: torch.Tensor | None = None):
        super().__init__()
        self.in_features, self.out_features, self.group = in_features, packed.shape[0], group
        self.register_buffer("packed", packed)
        self.register_buffer("scales_zeros", scales_zeros)  # [in/group, out, 2] bf16
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> "Int4Linear | nn.Linear":
        n, k = linear.weight.shape
        g = _group_size(k)
        if g is None:
            return linear  # no group size fits: keep this layer as it is
        w = linear.weight.detach().float().reshape(n, k // g, g)
        lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
        scale = ((hi - lo) / 15).clamp(min=1e-8)
        q = ((w - lo) / scale).round_().clamp_(0, 15).to(torch.int32).reshape(n, k)
        zeros = lo + 8 * scale  # the kernel computes (q - 8) * scale + zero
        sz = torch.cat([scale, zeros], -1).transpose(0, 1).contiguous().to(torch.bfloat16)
        packed = torch._convert_weight_to_int4pack_for_cpu(q, 1)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        return cls(packed, sz, g, k, bias)

    def export(self) -> dict[str, torch.Tensor]:
        out = {"packed": self.packed, "scales_zeros": self.scales_zeros}
        if self.bias is not None:
            out["bias"] = self.bias
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch._weight_int4pack_mm_for_cpu(x2, self.packed, self.group, self.scales_zeros)
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


KINDS = {"int8": Int8Linear, "int4": Int4Linear}


def _linear_slots(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of each nn.Linear; the layers themselves are not held, so each can be freed."""
    return [(parent, name) for parent in model.modules()
            for name, child in parent.named_children() if type(child) is nn.Linear]


def quantize_model(model: nn.Module, kind: str, progress: Callable[[int, int], None] | None = None) -> nn.Module:
    """Replace every nn.Linear by its quantized form, in place, one layer at a time."""
    _engine()
    cls = KINDS[kind]
    slots = _linear_slots(model)
    for i, (parent, name) in enumerate(slots):
        setattr(parent, name, cls.from_linear(getattr(parent, name)))  # the bf16 layer is freed here
        if progress:
            progress(i + 1, len(slots))
    model.llm42_quantize = kind
    return model


def is_quantized_dir(path: str | Path) -> bool:
    return (Path(path) / QUANT_FILE).is_file()


def save_quantized(model: nn.Module, tokenizer, out: str | Path) -> None:
    """A folder that `--model-path` loads directly, with no bf16 weights and no re-quantization."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors, layers = {}, {}
    for prefix, module in model.named_modules():
        if isinstance(module, (Int8Linear, Int4Linear)):
            layers[prefix] = {"kind": "int8" if isinstance(module, Int8Linear) else "int4",
                              "group": getattr(module, "group", None), "in_features": module.in_features}
            for k, v in module.export().items():
                tensors[f"{prefix}.{k}"] = v.contiguous()
    quantized = tuple(f"{p}." for p in layers)
    for k, v in model.state_dict().items():
        if not k.startswith(quantized):
            tensors[k] = v.contiguous()
    save_file(tensors, out / WEIGHTS_FILE, metadata={"format": "llm42-quantized"})
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / QUANT_FILE).write_text(json.dumps({"format": FORMAT, "kind": model.llm42_quantize, "layers": layers}, indent=1))


def _release_free_memory() -> None:
    """Hand the read buffers' freed heap back to the OS (glibc keeps it otherwise)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _skeleton(path: Path, dtype: torch.dtype):
    """The model with every tensor on the meta device: structure, no memory."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype), config


def _place(model: nn.Module, prefix: str, module: nn.Module) -> None:
    parent, _, name = prefix.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def _finish(model: nn.Module, config, path: Path, rest: dict[str, torch.Tensor], kind: str) -> nn.Module:
    from transformers import GenerationConfig

    model.load_state_dict(rest, strict=False, assign=True)
    for module in model.modules():  # non-persistent buffers (rotary frequencies) are recomputed
        if hasattr(module, "inv_freq") and any(b.is_meta for b in module.buffers(recurse=False)):
            with torch.device("cpu"):
                fresh = type(module)(config=config)
            for k, b in fresh.named_buffers(recurse=False):
                setattr(module, k, b)
    _release_free_memory()
    left = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.is_meta]
    if left:
        raise ValueError(f"{path} lacks {len(left)} tensors (first: {left[0]})")
    if (path / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(path)
    model.llm42_quantize = kind
    return model.eval()


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.to(dtype) if t.is_floating_point() else t


def quantize_checkpoint(path: str | Path, kind: str, dtype: torch.dtype = torch.bfloat16,
                        progress: Callable[[int, int], None] | None = None) -> nn.Module:
    """Quantize straight from a safetensors folder, one Linear at a time: the full-precision
    model never exists in memory. Raises KeyError/ValueError when the names do not line up."""
    from .checkpoint import Checkpoint

    _engine()
    path = Path(path)
    model, config = _skeleton(path, dtype)
    ckpt = Checkpoint(path)
    out = model.get_output_embeddings()
    embed_key = next((n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight), None)
    slots = [(prefix, m) for prefix, m in model.named_modules() if type(m) is nn.Linear]
    cls = KINDS[kind]
    for i, (prefix, meta) in enumerate(slots):
        key = f"{prefix}.weight"
        if key not in ckpt and meta is out and embed_key in ckpt:
            key = embed_key  # tied embeddings: the output layer shares the input table
        linear = nn.Linear(meta.in_features, meta.out_features, bias=meta.bias is not None, device="meta")
        linear.weight = nn.Parameter(ckpt.get(key), requires_grad=False)
        if meta.bias is not None:
            linear.bias = nn.Parameter(ckpt.get(f"{prefix}.bias"), requires_grad=False)
        q = cls.from_linear(linear)
        _place(model, prefix, q.to(dtype) if type(q) is nn.Linear else q)  # int4 keeps layers no group fits
        if progress:
            progress(i + 1, len(slots))
    done = tuple(f"{p}." for p, _ in slots)
    names = {n for n, _ in [*model.named_parameters(), *model.named_buffers()]}
    rest = {k: _as(ckpt.get(k), dtype) for k in ckpt.keys() if k in names and not k.startswith(done)}
    return _finish(model, config, path, rest, kind)


def load_quantized(path: str | Path, dtype: torch.dtype = torch.bfloat16, threads: int = 2) -> nn.Module:
    """A folder written by save_quantized: skeleton first, then the saved tensors, nothing re-quantized."""
    from .checkpoint import Checkpoint

    _engine()
    path = Path(path)
    meta = json.loads((path / QUANT_FILE).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} was saved by another llm42 version (format {meta.get('format')}); quantize again")
    model, config = _skeleton(path, dtype)
    layers = meta["layers"]
    ckpt = Checkpoint(path, WEIGHTS_FILE)
    names = ckpt.keys()

    def build(prefix: str, t: dict[str, torch.Tensor]) -> nn.Module:
        spec = layers[prefix]
        if spec["kind"] == "int8":
            return Int8Linear(t["qweight"], t["scales"], t.get("bias"))
        return Int4Linear(t["packed"], t["scales_zeros"], spec["group"], spec["in_features"], t.get("bias"))

    def read(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) + 1 :]: ckpt.get(k) for k in names if k.startswith(prefix + ".")}

    window = 4 * max(threads, 1)  # layers in flight: enough to keep the workers busy, memory stays flat
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:  # int8 prepacking is single-threaded per layer
        pending: list = []
        placed = 0
        for prefix in layers:
            pending.append((prefix, pool.submit(build, prefix, read(prefix))))
            while len(pending) >= window or (pending and pending[0][1].done()):
                done_prefix, future = pending.pop(0)
                _place(model, done_prefix, future.result())
                placed += 1
                if placed % 16 == 0:
                    _release_free_memory()
        for done_prefix, future in pending:
            _place(model, done_prefix, future.result())
    done = tuple(f"{p}." for p in layers)
    rest = {k: ckpt.get(k) for k in names if not k.startswith(done)}
    return _finish(model, config, path, rest, meta["kind"])
