"""Builders for the test models (real files on disk, nothing mocked)."""

from __future__ import annotations

import os
from pathlib import Path

from llm42.bench.randmodel import TINY_42DOT, build_42dot

CACHE = Path(os.environ.get("LLM42_TEST_CACHE", Path.home() / ".cache" / "llm42-tests"))  # built once, kept


def build_tiny_42dot(out: Path) -> None:
    build_42dot(out, TINY_42DOT)


def convert_smollm2(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF once into a bf16 safetensors folder: what the CLI computes with on every CPU (it would round
    fp32 weights to bf16 itself at each start), half the bytes to read at each of the suite's ~170 starts. The tests
    that compare with transformers load it as fp32 (exact: every bf16 value is an fp32 one)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.to(torch.bfloat16).save_pretrained(out)
    tok.save_pretrained(out)


def int4_step(w, group: int):
    """The largest step llm42's int4 layout may give each weight of w [n, k] (fp32), from the layout's maths: a group's
    scale must span its range in 15 steps and let the codes' window (which starts between -16 and -1/16 scales) reach
    it, and is kept rounded up to the next unit of its row (the largest scale the row needs / 255). Rounding to
    nearest moves a weight by at most half of it."""
    import torch

    g = w.reshape(w.shape[0], -1, group)
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    need = torch.maximum((hi - lo) / 15, torch.maximum(-lo / 16, hi / 14.9375))
    return (need + need.amax(1, keepdim=True) / 255).expand_as(g).reshape(w.shape)
