"""Loading: read a located model's config, load its weights and tokenizer (a saved quantized folder as it is,
a .gguf file through its converted copy), quantize if asked. A plain Llama in safetensors with a tokenizer.json is
llm42's own (llama.py, tokenizer.py) and transformers is never imported for it; other models load through it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..i18n import t
from . import llama
from .checkpoint import Damaged
from .download import silent
from .gguf import converted_before, keep_converted
from .llama import Config
from .source import LoadError, Source, first_line, has_weights, hint, hub_reachable, offline_error
from .tokenizer import Tokenizer

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
    """llm42's own Config where its Llama runs the model (transformers is not imported for it), else transformers'."""
    if src.gguf_file and (done := converted_before(src)):  # its config.json, not the GGUF's metadata
        src = replace(src, path=str(done), gguf_file=None)
    folder = _folder(src)
    if folder is not None and (own := Config.read(folder)) is not None:
        return own
    from transformers import AutoConfig

    try:
        return _from_hub(AutoConfig.from_pretrained, src)
    except LoadError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise LoadError(t("bad_config", name=src.name, why=first_line(e), hint=hint(e))) from None


def load_model(
    src: Source, device: str, dtype: torch.dtype, quantize: str = "none", info=lambda text: None, keep: bool = True
):
    """Model in eval mode on `device` in `dtype` (quantized if asked or saved so), tokenizer beside it; weights kept
    as the file has them may still lie in its mapping (llama.load): `memory.own(model)` once laid out.
    A .gguf model is converted once and kept in the cache (`info` says where). On a CPU without bf16
    arithmetic, its bf16 layers take their prefill through fp32 (widen.py)."""
    model, tokenizer = _load_model(src, device, dtype, quantize, info, keep)
    if device == "cpu":
        from ..cpu.widen import widen_prefill

        widen_prefill(model)
    return model, tokenizer


def _load_model(src: Source, device: str, dtype: torch.dtype, quantize: str, info, keep: bool):
    from .quantize import quantize_model
    from .saved import load_quantized, looks_saved, quantized

    plain = src.local and not src.gguf_file
    own = plain and not src.trust_remote_code and Config.read(src.path) is not None
    try:
        tokenizer = Tokenizer.read(src.path) if own else None
        tokenizer = tokenizer or _from_hub(_transformers().AutoTokenizer.from_pretrained, src)
        if plain and looks_saved(src.path):
            return load_quantized(src.path, dtype), tokenizer
        if quantize != "none" and plain and has_weights(Path(src.path)):
            try:  # layer by layer from the file (the full-precision model is never in memory), once: then cached
                return quantized(src.path, quantize, dtype, info, keep), tokenizer
            except (KeyError, ValueError) as e:
                if isinstance(e, Damaged):
                    raise
                # names that need transformers' own loading: take the longer way below
        model = llama.load(src.path, dtype, device, mapped=True) if own and device in ("cpu", "cuda") else None
        if model is None:
            model = _transformers_model(src, device, dtype)
    except LoadError:
        raise
    except Damaged as e:
        raise LoadError(t("damaged", name=src.name, why=str(e))) from None
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
            gguf = (Path(src.path) / src.gguf_file).stat().st_size / 1e6
            size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 1e6
            info(t("gguf_converted", path=folder, gguf=gguf, mb=size, dtype=str(dtype).removeprefix("torch.")))
            if quantize == "none" and size > 1.5 * gguf:
                info(t("gguf_bigger"))
    if quantize != "none":
        quantize_model(model, quantize)
    return model.eval(), tokenizer


def _transformers():
    """transformers' auto classes, its own progress bars and notices off (our spinner says what is loading)."""
    import transformers
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    return transformers


def _transformers_model(src: Source, device: str, dtype: torch.dtype):
    kw = {"dtype": dtype}
    if not src.allow_pickle and not src.gguf_file:
        kw["use_safetensors"] = True  # never unpickle unless asked: it can run code
    if device != "cpu":
        kw["device_map"] = device  # weights go straight to the GPU, no CPU copy
    auto = _transformers().AutoModelForCausalLM
    if src.gguf_file:  # its own tqdm bar would fight the status line (a new line per redraw in a terminal)
        import transformers.modeling_gguf_pytorch_utils as gguf_utils

        gguf_utils.tqdm = silent()
    return _from_hub(auto.from_pretrained, src, **kw)


def _folder(src: Source) -> Path | None:
    """The folder the config comes from: a local one, or a hub model's copy in the hub cache (None: not there)."""
    if src.local:
        return Path(src.path)
    if src.trust_remote_code:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(src.path, "config.json", revision=src.revision)
    return Path(found).parent if isinstance(found, str) else None


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
