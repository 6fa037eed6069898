"""The developer commands a newcomer meets besides the chat: the random 42dot-shaped model, the benchmark's and
the quality report's edges."""

import subprocess
import sys

import pytest

from llm42.bench.randmodel import TINY_42DOT, build_42dot, train_tokenizer
from tests.support.cli import ROOT, cli_env, run_cli


def tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, env=cli_env(), timeout=120
    )


def test_the_42dot_vocabulary_decodes_to_visible_text_and_ordinary_text_encodes_as_before():
    """A random model samples any of the 50,304 ids: each decodes to text, where the ~1,000 a small corpus
    trains left the rest empty. The extra tokens come from no merge, so encoding is the trained tokenizer's."""
    small, full = train_tokenizer(), train_tokenizer(50304)
    assert len(full) == 50304
    empty = [i for i in range(len(small), len(full)) if not full.decode([i]).strip()]
    assert not empty, empty[:5]
    text = "<human>: 한국의 수도는 어디인가요? <bot>: The capital of Korea is Seoul. def add(a, b): 🙂"
    assert full.encode(text) == small.encode(text) and full.decode(full.encode(text)) == text


def test_a_random_model_in_the_42dot_vocabulary_prints_visible_text(tmp_path):
    build_42dot(tmp_path / "m", {**TINY_42DOT, "vocab_size": 50304})
    r = run_cli("--model-path", str(tmp_path / "m"), "--seed", "0", "--max-new-tokens", "24", "--prompt", "안녕하세요")
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout.decode().strip()) >= 10, r.stdout


def test_benchmodel_builds_a_folder_the_chat_loads_and_refuses_an_existing_one(tmp_path):
    assert "random-weight model in the 42dot shape" in tool("llm42.bench.randmodel", "--help").stdout
    done = tool("llm42.bench.randmodel", str(tmp_path / "tiny"), "--tiny")
    assert done.returncode == 0 and (tmp_path / "tiny" / "config.json").is_file(), done.stderr
    again = tool("llm42.bench.randmodel", str(tmp_path / "tiny"), "--tiny")
    assert again.returncode == 2 and "exists already" in again.stderr


def test_quality_help_describes_every_flag():
    text = tool("llm42.bench.quality", "--help").stdout
    assert "weight modes to compare with fp32" in text and "figures as JSON" in text


def test_bench_on_a_gpu_that_is_not_there_is_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    r = tool("llm42.bench", "--device", "cuda")
    assert r.returncode == 2 and "sees no CUDA GPU" in r.stderr and "Traceback" not in r.stderr, r.stderr
