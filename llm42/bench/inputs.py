"""What every benchmark row runs on: the random 42dot-shaped model (bf16, and quantized once) and its prompts."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from ..paths import cache_dir
from .randmodel import CORPUS, FULL_42DOT, build_42dot


def bench_model() -> Path:
    """The full-size random 42dot model in bf16, built once (about 2.9 GB on disk)."""
    import torch

    path = cache_dir() / "bench-42dot-1.3b"
    if not (path / "config.json").is_file():
        print(f"building the random 42dot-shaped model in {path} (once)", file=sys.stderr)
        tmp = path.with_name(path.name + ".partial")
        build_42dot(tmp, FULL_42DOT, dtype=torch.bfloat16, say=lambda text: print(f"  {text}", file=sys.stderr))
        tmp.rename(path)
    return path


def quantized_path(kind: str) -> Path:
    return cache_dir() / f"bench-42dot-1.3b-{kind}"


def quantized_model(kind: str) -> Path:
    """The bench model quantized and saved once, as `--save-quantized` would (call it outside a timed process)."""
    from transformers import AutoTokenizer

    from ..model.quantize import quantize_checkpoint
    from ..model.saved import FORMAT, QUANT_FILE, save_quantized

    path = quantized_path(kind)
    marker = path / QUANT_FILE
    if not marker.is_file() or json.loads(marker.read_text()).get("format") != FORMAT:
        print(f"quantizing the bench model to {kind} in {path} (once)", file=sys.stderr)
        shutil.rmtree(path, ignore_errors=True)
        source = bench_model()
        save_quantized(quantize_checkpoint(source, kind), AutoTokenizer.from_pretrained(source), path)
    return path


def prompt_ids(tokenizer, n: int, salt: int = 0) -> list[int]:
    """n real token ids of mixed Korean/English text (deterministic)."""
    ids = tokenizer.encode(" ".join(CORPUS[salt % len(CORPUS) :] + CORPUS), add_special_tokens=False)
    while len(ids) < n:
        ids = ids + ids
    return ids[:n]


def prompts(tokenizer) -> dict[str, list[int]]:
    """The same token ids for every configuration."""
    return {
        "200": prompt_ids(tokenizer, 200),
        "1024": prompt_ids(tokenizer, 1024, 1),
        "history": prompt_ids(tokenizer, 1000, 2),
        "follow": prompt_ids(tokenizer, 20, 3),
    }
