"""Random-weight models in the exact (or a scaled-down) 42dot shape, with a trained byte-level BPE.

Speed does not depend on weight values, so the benchmark and the tests use these."""

from __future__ import annotations

from pathlib import Path

# Text the tokenizer learns from: Korean, English, code and the chat markers.
CORPUS = [
    "호기심 많은 인간 (human)과 인공지능 봇 (AI bot)의 대화입니다. 봇의 이름은 42dot LLM이고 포티투닷 (42dot)에서 개발했습니다. ",
    "봇은 인간의 질문에 대해 친절하게 유용하고 상세한 답변을 제공합니다. <human>: 안녕하세요 <bot>: 안녕하세요! 무엇을 도와드릴까요?",
    "<human>: 한국의 수도는 어디인가요? <bot>: 한국의 수도는 서울입니다. 서울은 한강을 끼고 있는 대도시입니다.",
    "<human>: What is the capital of France? <bot>: The capital of France is Paris.",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))  # 3\n",
    "오늘 날씨가 맑습니다. 내일은 비가 올 수도 있습니다. 우산을 챙기세요. 감사합니다.",
    "The quick brown fox jumps over the lazy dog. Streaming text should never break a character.",
    "이모지도 잘 나와야 합니다 🙂🚀 그리고 한자 漢字 도요.",
] * 20

FULL_42DOT = dict(
    vocab_size=50304, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24, num_attention_heads=32,
    num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-6, tie_word_embeddings=False,
)
TINY_42DOT = dict(
    hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
    max_position_embeddings=320, rms_norm_eps=1e-5, tie_word_embeddings=False,
)


def train_tokenizer(vocab_size: int = 1000):
    """A byte-level BPE like 42dot's, with <|endoftext|> as EOS and a BOS right after it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|startoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|startoftext|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>",
                                   clean_up_tokenization_spaces=False)


def build_42dot(out: Path, shape: dict, dtype=None, seed: int = 0) -> None:
    """Save a random LlamaForCausalLM of `shape` (vocab defaults to the tokenizer's) and its tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = train_tokenizer()
    cfg = {"vocab_size": len(tok), **shape}
    config = LlamaConfig(**cfg, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype or torch.float32)  # initialise in the saved dtype: no fp32 copy
    try:
        model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
