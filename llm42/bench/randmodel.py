"""Random-weight models in the exact (or a scaled-down) 42dot shape, with a trained byte-level BPE.

Speed does not depend on weight values, so the benchmark and the tests use these."""

from __future__ import annotations

from pathlib import Path

# Text the tokenizer learns from: Korean, English, code and the chat markers.
CORPUS = [
    "호기심 많은 인간 (human)과 인공지능 봇 (AI bot)의 대화입니다. 봇의 이름은 "
    "42dot LLM이고 포티투닷 (42dot)에서 개발했습니다. ",
    "봇은 인간의 질문에 대해 친절하게 유용하고 상세한 답변을 제공합니다. <human>: "
    "안녕하세요 <bot>: 안녕하세요! 무엇을 도와드릴까요?",
    "<human>: 한국의 수도는 어디인가요? <bot>: 한국의 수도는 서울입니다. 서울은 한강을 끼고 있는 대도시입니다.",
    "<human>: What is the capital of France? <bot>: The capital of France is Paris.",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))  # 3\n",
    "오늘 날씨가 맑습니다. 내일은 비가 올 수도 있습니다. 우산을 챙기세요. 감사합니다.",
    "The quick brown fox jumps over the lazy dog. Streaming text should never break a character.",
    "이모지도 잘 나와야 합니다 🙂🚀 그리고 한자 漢字 도요.",
] * 20

FULL_42DOT = dict(
    vocab_size=50304,
    hidden_size=2048,
    intermediate_size=5632,
    num_hidden_layers=24,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-6,
    tie_word_embeddings=False,
)
TINY_42DOT = dict(
    hidden_size=64,
    intermediate_size=176,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=320,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def filler(n: int, taken: set[str]) -> list[str]:
    """n byte-level token strings that decode to visible text (Korean syllables, short Latin words, each with and
    without a leading space) and are not in `taken`. No merge produces them, so encoding never uses them; a
    random model that samples them prints text instead of nothing."""
    from itertools import product

    from tokenizers import pre_tokenizers

    table = {b: c for b, c in zip(range(256), sorted(pre_tokenizers.ByteLevel.alphabet(), key=_byte_of))}
    words = [chr(c) for c in range(0xAC00, 0xD7A4)] + [
        "".join(p) for k in (2, 3) for p in product("abcdefghijklmnopqrstuvwxyz", repeat=k)
    ]
    out = []
    for word in words:
        for text in (" " + word, word):
            token = "".join(table[b] for b in text.encode())
            if token not in taken:
                out.append(token)
                if len(out) == n:
                    return out
    return out


def _byte_of(c: str) -> int:
    """The byte a byte-level BPE character stands for (GPT-2's table: printable bytes map to themselves)."""

    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return ord(c) if ord(c) in printable else others[ord(c) - 256]


def big_corpus() -> list[str]:
    """English, Korean and code for a full-size vocabulary, all on this machine: Python's own documentation (pydoc's
    topics, 0.5 MB of English prose), the standard library's docstrings, comments and code (~6 MB), llm42's Korean
    messages and every Hangul syllable (so Korean text never falls back to bytes)."""
    import json
    import re
    from pydoc_data.topics import topics

    std = sorted(Path(json.__file__).parent.parent.glob("*.py"))
    code = [f.read_text(encoding="utf-8", errors="ignore") for f in std]
    prose = [p for src in code for p in re.findall(r'"""(.*?)"""', src, re.S) + re.findall(r"#\s*(.+)", src)]
    i18n = Path(__file__).resolve().parents[1] / "i18n"
    korean = re.findall(r"[가-힣][가-힣 ,.()]*", "".join(f.read_text(encoding="utf-8") for f in i18n.glob("*.py")))
    return [*topics.values(), *prose, *code, *CORPUS, *korean, " ".join(chr(c) for c in range(0xAC00, 0xD7A4))]


def train_tokenizer(vocab_size: int = 1000):
    """A byte-level BPE like 42dot's, with <|endoftext|> as EOS and a BOS right after it. Up to 1,000 tokens (the
    tests' tiny model) it learns a small corpus, and a larger `vocab_size` there is filled with tokens that decode to
    visible text; a full-size one learns `big_corpus` (4 s): English prose ~1.2 tokens a word, Korean ~2.4 a word
    (eojeol), every token reachable by its merges, as with a real 50k BPE."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    big = vocab_size > 1000
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size if big else min(vocab_size, 1000),
        special_tokens=["<|endoftext|>", "<|startoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(big_corpus() if big else CORPUS, trainer)
    if vocab_size > tok.get_vocab_size():
        spec = json.loads(tok.to_str())
        vocab = spec["model"]["vocab"]
        for token in filler(vocab_size - tok.get_vocab_size(), set(vocab)):
            vocab[token] = len(vocab)
        tok = Tokenizer.from_str(json.dumps(spec))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|startoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
    )


WORDS_FIRST = 10.0  # how much the output layer favours whole words (see `favour_words`)


def words(tok) -> list[int]:
    """Token ids that are one whole word after a space (" the", " 서울") and encode back to themselves alone."""
    import re

    backend = tok.backend_tokenizer
    out = []
    for i in range(backend.get_vocab_size()):
        text = backend.decode([i])
        if re.fullmatch(r" [A-Za-z가-힣]+", text) and backend.encode(text, add_special_tokens=False).ids == [i]:
            out.append(i)
    return out


def favour_words(model, ids: list[int]) -> None:
    """Scale the output layer's rows of whole-word tokens, so that a random model samples those: its replies are
    words, and their text tokenizes back to the very ids it sampled (as a real model's mostly do; the prompt cache
    then takes a stopped reply back whole). Without this, a random model samples word pieces and lone bytes, which
    re-tokenize otherwise."""
    import torch

    with torch.no_grad():
        model.lm_head.weight[ids] *= WORDS_FIRST


def build_42dot(out: Path, shape: dict, dtype=None, seed: int = 0, say=lambda text: None) -> None:
    """Save a random LlamaForCausalLM of `shape` (vocab defaults to the tokenizer's) and its tokenizer; `say(text)`
    is told each step as it begins."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    say(f"training the tokenizer ({shape.get('vocab_size', 1000):,} tokens)")
    tok = train_tokenizer(shape.get("vocab_size", 1000))
    cfg = {"vocab_size": len(tok), **shape}
    config = LlamaConfig(
        **cfg, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id
    )
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype or torch.float32)  # initialise in the saved dtype: no fp32 copy
    try:
        say(f"making random weights ({config.num_hidden_layers} layers, hidden {config.hidden_size})")
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    if len(tok) > 1000:
        favour_words(model, words(tok))
    model.generation_config.eos_token_id = tok.eos_token_id
    out.mkdir(parents=True, exist_ok=True)
    write_weights(model, out / "model.safetensors", say)
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    tok.save_pretrained(out)


def write_weights(model, path: Path, say) -> None:
    """model.safetensors written tensor by tensor, with its progress said every tenth of the way."""
    import json

    import torch

    from ..model.checkpoint import DTYPES

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    names = {dtype: name for name, dtype in DTYPES.items()}  # the names safetensors gives dtypes
    header, at = {"__metadata__": {"format": "pt"}}, 0
    for k, v in state.items():
        n = v.numel() * v.element_size()
        header[k] = {"dtype": names[v.dtype], "shape": list(v.shape), "data_offsets": [at, at + n]}
        at += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    done, told = 0, 0
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for v in state.values():
            f.write(v.view(-1).view(torch.uint8).numpy().tobytes() if v.numel() else b"")
            done += v.numel() * v.element_size()
            if at > 2e8 and done * 10 // at > told:  # a file that takes seconds to write
                told = done * 10 // at
                say(f"writing {path.name}: {done / 1e9:.1f} of {at / 1e9:.1f} GB")


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    import time

    p = argparse.ArgumentParser(
        prog="python -m llm42.bench.randmodel",
        description=(
            "Build a random-weight model in the 42dot shape (24 layers, "
            "hidden 2048, vocabulary 50,304; about 2.6 GB in "
            "bf16) with a byte-level BPE tokenizer, as a normal Hugging Face folder: to try llm42 or measure its speed "
            "without the real weights. It replies with random (visible) text."
        ),
    )
    p.add_argument("out", help="the folder to write (must not exist yet)")
    p.add_argument("--tiny", action="store_true", help="the scaled-down shape the tests use (a few MB)")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"), help="weights' dtype")
    a = p.parse_args(argv)
    out = Path(a.out)
    if out.exists():
        p.error(f"{out} exists already: name a new folder")
    start = time.perf_counter()

    def say(text: str) -> None:
        print(f"[{time.perf_counter() - start:5.1f}s] {text}", file=sys.stderr, flush=True)

    say("starting PyTorch and transformers")
    import torch
    import transformers  # noqa: F401  (imported here, so that the wait is said)

    build_42dot(out, TINY_42DOT if a.tiny else FULL_42DOT, dtype=getattr(torch, a.dtype), say=say)
    say(f"wrote {out}; chat with it: python example_cli.py --model-path {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
