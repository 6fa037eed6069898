"""The developer commands a newcomer meets besides the chat: the random 42dot-shaped model, the benchmark's and
the quality report's edges."""

import re
import subprocess

import pytest

from llm42.bench.randmodel import TINY_42DOT, build_42dot, train_tokenizer
from tests.support.cli import run_cli, run_python

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not


def tool(*args: str) -> subprocess.CompletedProcess:
    return run_python("-m", *args, timeout=120)


def test_the_42dot_vocabulary_is_a_real_bpe_with_words_that_tokenize_back():
    """The full-size tokenizer learns 50,304 tokens from text on this machine: English ~1.2 tokens a word and
    Korean under 3 a word, as a real 50k BPE; every id decodes to text; whole-word tokens (what the random model
    favours) tokenize back to the very ids."""
    import random

    from llm42.bench.randmodel import words

    tok = train_tokenizer(50304)
    assert len(tok) == 50304
    assert not [i for i in range(2, len(tok)) if not tok.decode([i])]
    english = (
        "When the meeting started at three, everyone had already read the report, and the discussion moved quickly "
        "to the budget for next year. She said that the results were better than expected."
    )
    korean = "한국의 수도는 서울입니다. 오늘은 날씨가 맑고 따뜻해서 산책하기 좋은 날입니다."
    assert len(tok.encode(english)) <= 1.5 * len(english.split())
    assert len(tok.encode(korean)) <= 3 * len(korean.split())
    for text in (english, korean, "<human>: 안녕? <bot>: def add(a, b): 🙂"):
        assert tok.decode(tok.encode(text)) == text
    whole = words(tok)
    assert len(whole) > 10_000
    ids = random.Random(0).choices(whole, k=200)
    assert tok.encode(tok.decode(ids)) == ids


def test_a_random_model_in_the_42dot_vocabulary_prints_visible_text(tmp_path):
    build_42dot(tmp_path / "m", {**TINY_42DOT, "vocab_size": 50304})
    r = run_cli("--model-path", str(tmp_path / "m"), "--seed", "0", "--max-new-tokens", "24", "--prompt", "안녕하세요")
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout.decode().split()) >= 10, r.stdout  # words
    r = run_cli(
        "--model-path", str(tmp_path / "m"), "--seed", "0", "--max-new-tokens", "40", "--no-history",
        stdin="안녕하세요\n네\n/stats\n",
    )  # fmt: skip
    prompt, cached = map(int, re.search(r"prompt tokens\s+(\d+) \((\d+) from the cache\)", r.stderr.decode()).groups())
    # the 40-token reply, sent back as text in the next prompt, tokenized back to its own ids: only the new
    # message and its markers were prefilled (a reply of word pieces came back from the cache up to its first piece)
    assert r.returncode == 0 and cached > 40 and prompt - cached < 20, r.stderr.decode()


def test_benchmodel_builds_a_folder_the_chat_loads_and_refuses_an_existing_one(tmp_path):
    assert "random-weight model in the 42dot shape" in tool("llm42.bench.randmodel", "--help").stdout
    done = tool("llm42.bench.randmodel", str(tmp_path / "tiny"), "--tiny")
    assert done.returncode == 0 and (tmp_path / "tiny" / "config.json").is_file(), done.stderr
    steps = [line.split("] ", 1)[1] for line in done.stderr.splitlines()]  # each step said as it begins, our own
    assert (
        steps[:3]
        == [
            "starting PyTorch and transformers",
            "training the tokenizer (1,000 tokens)",
            "making random weights (2 layers, hidden 64)",
        ]
        and "Writing model shards" not in done.stderr
    )
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


def test_bench_rounds_make_one_row_of_medians():
    """`python -m llm42.bench --rounds N`: a configuration's runs become one row, each figure its median, the peak
    memory the highest run's, the decode speeds kept in the order run; a skipped run makes the row skipped."""
    from llm42.bench.run import median_run

    runs = [
        dict(load_s=1.0, decode_tps=40.0, ttft1024_s=4.0, peak_gb=1.6, kernels="llm42"),
        dict(load_s=3.0, decode_tps=60.0, ttft1024_s=5.0, peak_gb=1.7, kernels="llm42"),
        dict(load_s=2.0, decode_tps=50.0, ttft1024_s=9.0, peak_gb=1.5, kernels="llm42"),
    ]
    row = median_run(runs)
    assert (row["load_s"], row["decode_tps"], row["ttft1024_s"], row["peak_gb"]) == (2.0, 50.0, 5.0, 1.7)
    assert row["decode_runs"] == [40.0, 60.0, 50.0] and row["kernels"] == "llm42"
    assert median_run(runs[:1]) == runs[0]
    assert "skipped" in median_run([*runs, dict(skipped="failed: out of memory")])
