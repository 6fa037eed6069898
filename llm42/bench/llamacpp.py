"""The bench model for llama.cpp: written as an f16 GGUF, quantized by llama.cpp's own quantizer (q8_0, q4_0).
Only for `python -m llm42.bench --llama-cpp`; llama-cpp-python is not a dependency."""

from __future__ import annotations

import json
from pathlib import Path

WIDTHS = {"f16": None, "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}


def _permute(w, heads: int):
    """transformers rotates the two halves of each head (rotate_half); llama.cpp's llama rotates pairs of
    neighbours: reorder Q/K rows as llama.cpp's own converter does."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model_dir: Path, out: Path) -> None:
    """The bench model as an f16 GGUF of llama.cpp's llama architecture (norms in f32)."""
    import gguf
    import numpy as np
    from safetensors import safe_open
    from transformers import AutoTokenizer

    cfg = json.loads((model_dir / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(model_dir)
    heads, kv_heads = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    w = gguf.GGUFWriter(out, "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(cfg["hidden_size"] // heads)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(float((cfg.get("rope_parameters") or {}).get("rope_theta") or cfg.get("rope_theta", 10000.0)))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    # the tokenizer (a trained byte-level BPE), padded with unused tokens to the model's vocabulary
    vocab = tok.get_vocab()
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    tokens += [f"[unused{i}]" for i in range(cfg["vocab_size"] - len(tokens))]
    types = [gguf.TokenType.NORMAL] * len(vocab) + [gguf.TokenType.UNUSED] * (len(tokens) - len(vocab))
    merges = json.loads(tok.backend_tokenizer.to_str())["model"]["merges"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    with safe_open(model_dir / "model.safetensors", "pt") as f:
        for key in f.keys():
            t = f.get_tensor(key).float()
            if key == "model.embed_tokens.weight":
                name = "token_embd.weight"
            elif key == "model.norm.weight":
                name = "output_norm.weight"
            elif key == "lm_head.weight":
                name = "output.weight"
            else:  # model.layers.N.<part>.weight
                _, _, n, *part, _ = key.split(".")
                name = f"blk.{n}.{names['.'.join(part)]}.weight"
                if part[-1] in ("q_proj", "k_proj"):
                    t = _permute(t, heads if part[-1] == "q_proj" else kv_heads)
            w.add_tensor(name, t.numpy().astype(np.float32 if t.dim() == 1 else np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_of(model_dir: Path, width: str) -> Path:
    """The bench model as a GGUF of `width` (f16, q8_0, q4_0), made once next to it."""
    f16 = model_dir.with_name(model_dir.name + "-f16.gguf")
    if not f16.is_file():
        tmp = f16.with_suffix(".partial")
        write_gguf(model_dir, tmp)
        tmp.rename(f16)
    if width == "f16":
        return f16
    out = model_dir.with_name(f"{model_dir.name}-{width}.gguf")
    if not out.is_file():
        import llama_cpp

        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, WIDTHS[width])
        tmp = out.with_suffix(".partial")
        if llama_cpp.llama_model_quantize(str(f16).encode(), str(tmp).encode(), params) != 0:
            raise RuntimeError(f"llama.cpp could not quantize {f16} to {width}")
        tmp.rename(out)
    return out
