"""Loading: read a located model's config, load its weights and tokenizer (a saved quantized folder as it is,
a .gguf file through its converted copy), quantize if asked. Imports the heavy libraries only when called."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .download import silent
from .gguf import conversions, keep_converted, whole
from .i18n import t
from .source import LoadError, Source, first_line, has_weights, hint, hub_reachable, offline_error

if TYPE_CHECKING:
    import torch


def _from_hub(fn, src: Source, **kw):
    """Call a from_pretrained: cache first, the network only if the cache lacks it."""
    try:
        return fn(src.path, **src.kwargs(local_only=True), **kw)
    except OSError:
        if src.local:
            raise
    if not hub_reachable():
        raise offline_error(src)
    return fn(src.path, **src.kwargs(), **kw)


def load_config(src: Source):
    from transformers import AutoConfig

    if src.gguf_file:  # converted on an earlier start (in any dtype): its config.json, not the GGUF's metadata
        done = [f.parent for f in sorted(conversions(src).glob("*/config.json")) if whole(f.parent)]
        if done:
            src = replace(src, path=str(done[0]), gguf_file=None)
    try:
        return _from_hub(AutoConfig.from_pretrained, src)
    except LoadError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise LoadError(t("bad_config", name=src.name, why=first_line(e), hint=hint(e))) from None


def load_model(src: Source, device: str, dtype: torch.dtype, quantize: str = "none", info=lambda text: None):
    """Model in eval mode on `device` in `dtype` (quantized if asked or saved so), tokenizer beside it.
    A .gguf model is converted once and kept in the cache (`info` says where). On a CPU without bf16
    arithmetic, its bf16 layers take their prefill through fp32 (widen.py)."""
    model, tokenizer = _load_model(src, device, dtype, quantize, info)
    if device == "cpu":
        from .cpu.widen import widen_prefill

        widen_prefill(model)
    return model, tokenizer


def _load_model(src: Source, device: str, dtype: torch.dtype, quantize: str, info):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    from .quantize import quantize_model
    from .saved import load_quantized, looks_saved, quantized

    logging.set_verbosity_error()  # our spinner replaces their progress bars and notices
    logging.disable_progress_bar()
    try:
        tokenizer = _from_hub(AutoTokenizer.from_pretrained, src)
        if src.local and not src.gguf_file and looks_saved(src.path):
            return load_quantized(src.path, dtype), tokenizer
        if quantize != "none" and src.local and not src.gguf_file and has_weights(Path(src.path)):
            try:  # layer by layer from the file (the full-precision model is never in memory), once: then cached
                return quantized(src.path, quantize, dtype, info), tokenizer
            except (KeyError, ValueError):
                pass  # names that need transformers' own loading: take the longer way below
        kw = {"dtype": dtype}
        if not src.allow_pickle and not src.gguf_file:
            kw["use_safetensors"] = True  # never unpickle unless asked: it can run code
        if device != "cpu":
            kw["device_map"] = device  # weights go straight to the GPU, no CPU copy
        if src.gguf_file:  # its own tqdm bar would fight the status line (a new line per redraw in a terminal)
            import transformers.modeling_gguf_pytorch_utils as gguf_utils

            gguf_utils.tqdm = silent()
        model = _from_hub(AutoModelForCausalLM.from_pretrained, src, **kw)
    except LoadError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise LoadError(t("cannot_load", name=src.name, why=first_line(e), hint=hint(e))) from None
    except Exception as e:  # safetensors' own error for a damaged file is none of the above
        if type(e).__name__ != "SafetensorError":
            raise
        raise LoadError(t("damaged", name=src.name, why=first_line(e))) from None
    if src.gguf_file:
        model.hf_quantizer = None  # GGUF weights arrive dequantized: a plain model now
        folder = keep_converted(model, tokenizer, src, dtype)
        if folder is not None:
            info(t("gguf_converted", path=folder))
    if quantize != "none":
        quantize_model(model, quantize)
    return model.eval(), tokenizer


SAMPLED = ("temperature", "top_p", "top_k", "repetition_penalty")  # what a generation_config.json may set for us


def model_sampling(model) -> dict:
    """The sampling values the model's own generation_config.json sets (transformers leaves the others None; a
    model without the file gets none); they are its defaults, ahead of 42dot's recommendation, behind flags."""
    g = getattr(model, "generation_config", None)
    out = {}
    for name in SAMPLED:
        v = getattr(g, name, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[name] = int(v) if name == "top_k" else float(v)
    return out


def stop_token_ids(model, tokenizer) -> set[int]:
    ids = set()
    for v in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(v, int):
            ids.add(v)
        elif v:
            ids.update(int(i) for i in v)
    return ids
