"""Weight-only quantization of the Linear layers for CPU decoding: int8 (per channel) and int4 (per group).

Activations stay bf16. int8 keeps one scale per output channel (PyTorch's int8 weight matmul);
int4 keeps a scale and zero per group of 32 input channels, each in 8 bits against a unit per row (4.5 bits a
weight, in llm42's own packing, the same on every CPU; cpu/layers.py), with the output layer in int8. Layers are
replaced one at a time, and from a safetensors folder they are read one at a time, so the full-precision model is
never in memory.

Activation-quantized int8 (fbgemm's dynamic matmul) was faster here but raised SmolLM2's perplexity
by 73 %: outlier activations do not survive one scale per tensor. Weight-only keeps it under 0.5 %."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..cpu.layers import Int4Linear, Int8Linear
from ..cpu.memory import own, release, release_free_memory

KINDS = {"int8": Int8Linear, "int4": Int4Linear}


def kind_for(kind: str, is_output: bool) -> type:
    """The output layer stays int8 in int4 mode: it is the most sensitive layer (llama.cpp keeps it wider too)."""
    return Int8Linear if is_output else KINDS[kind]


def _linear_slots(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of each nn.Linear; the layers themselves are not held, so each can be freed."""
    return [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear
    ]


def quantize_model(model: nn.Module, kind: str) -> nn.Module:
    """Replace every nn.Linear by its quantized form, in place, one layer at a time."""
    out = model.get_output_embeddings()
    slots = _linear_slots(model)
    for parent, name in slots:
        layer = getattr(parent, name)
        setattr(parent, name, kind_for(kind, layer is out).from_linear(layer))  # the bf16 layer is freed here
    model.llm42_quantize = kind
    return model


def skeleton(path: Path, dtype: torch.dtype):
    """The model with every tensor on the meta device: structure, no memory (llm42's own Llama where it fits)."""
    from .llama import skeleton as own

    built = own(path, dtype)
    if built is not None:
        return built
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=dtype), config


def place(model: nn.Module, prefix: str, module: nn.Module) -> None:
    parent, _, name = prefix.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def finish(model: nn.Module, config, path: Path, rest: dict[str, torch.Tensor], kind: str) -> nn.Module:
    model.load_state_dict(rest, strict=False, assign=True)
    for module in model.modules():  # non-persistent buffers (rotary frequencies) are recomputed
        if hasattr(module, "inv_freq") and any(b.is_meta for b in module.buffers(recurse=False)):
            with torch.device("cpu"):
                fresh = type(module)(config=config)
            for k, b in fresh.named_buffers(recurse=False):
                setattr(module, k, b)
    own(model)  # what is kept as the file has it, out of the checkpoint's mapping
    release_free_memory()
    left = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.is_meta]
    if left:
        raise ValueError(f"{path} lacks {len(left)} tensors (first: {left[0]})")
    if (path / "generation_config.json").is_file() and not hasattr(model, "prefill"):  # llm42's Llama read it
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(path)
    model.llm42_quantize = kind
    return model.eval()


def quantize_checkpoint(path: str | Path, kind: str, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Quantize straight from a safetensors folder, one Linear at a time: the full-precision
    model never exists in memory. Raises KeyError/ValueError when the names do not line up."""
    from .checkpoint import Checkpoint

    path = Path(path)
    model, config = skeleton(path, dtype)
    ckpt = Checkpoint(path, mapped=True)  # each weight read from the file's mapping, its pages dropped once quantized
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
        if type(q) is not nn.Linear:
            release(linear.weight)
        place(model, prefix, q.to(dtype) if type(q) is nn.Linear else q)  # int4 keeps layers no group fits
    done = tuple(f"{p}." for p, _ in slots)
    names = {n for n, _ in [*model.named_parameters(), *model.named_buffers()]}
    rest = {k: ckpt.get(k, dtype) for k in ckpt.keys() if k in names and not k.startswith(done)}
    return finish(model, config, path, rest, kind)
