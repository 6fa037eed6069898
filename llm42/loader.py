"""Loading: find the model (hub id, folder or .gguf), read its config, load weights and tokenizer."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch


class LoadError(RuntimeError):
    """The model could not be found or loaded; the message says what to do."""


@dataclass
class Source:
    """Where the weights are: a hub id, a local folder, or a folder + GGUF file name."""

    name: str  # what the user typed
    path: str  # hub id or local folder
    gguf_file: str | None = None
    local: bool = False
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False

    def kwargs(self, local_only: bool = False) -> dict:
        kw = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        if self.gguf_file:
            kw["gguf_file"] = self.gguf_file
        if local_only or self.local:
            kw["local_files_only"] = True
        return kw


PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def locate(model_path: str, revision: str | None = None, trust_remote_code: bool = False,
           allow_pickle: bool = False) -> Source:
    src = _locate(model_path, revision, trust_remote_code)
    src.allow_pickle = allow_pickle
    if src.local and not src.gguf_file and not allow_pickle and not any(Path(src.path).glob("*.safetensors")):
        pickles = sorted(f.name for pattern in PICKLES for f in Path(src.path).glob(pattern))
        if pickles:
            raise LoadError(f"{model_path} has only pickle weights ({pickles[0]}), and unpickling can run code: "
                            "convert them to safetensors, or pass --allow-pickle if you trust where they came from")
    return src


def _locate(model_path: str, revision: str | None, trust_remote_code: bool) -> Source:
    p = Path(model_path).expanduser()
    if model_path.lower().endswith(".gguf"):
        if not p.is_file():
            raise LoadError(f"no GGUF file at {model_path}; check the path")
        return Source(model_path, str(p.parent), p.name, True, revision, trust_remote_code)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise LoadError(f"{model_path} has no config.json; point --model-path at a folder saved with "
                            "save_pretrained, a .gguf file, or a hub id like 42dot/42dot_LLM-SFT-1.3B")
        return Source(model_path, str(p), None, True, revision, trust_remote_code)
    if p.exists() or model_path.startswith((".", "/", "~")) or model_path.count("/") > 1:
        raise LoadError(f"no model folder at {model_path}; check the path")
    return Source(model_path, model_path, None, False, revision, trust_remote_code)


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline_error(src: Source) -> LoadError:
    return LoadError(f"{src.name} is not in the local cache and the Hugging Face hub cannot be reached; "
                     f"download it once online, or pass a local copy: --model-path /path/to/folder")


def _from_hub(fn, src: Source, **kw):
    """Call a from_pretrained: cache first, the network only if the cache lacks it."""
    try:
        return fn(src.path, **src.kwargs(local_only=True), **kw)
    except OSError:
        if src.local:
            raise
    if not hub_reachable():
        raise _offline_error(src)
    return fn(src.path, **src.kwargs(), **kw)


def load_config(src: Source):
    from transformers import AutoConfig

    try:
        return _from_hub(AutoConfig.from_pretrained, src)
    except LoadError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise LoadError(f"cannot read the model config of {src.name}: {first_line(e)}{hint(e)}") from None


def hint(e: BaseException) -> str:
    """What to do about the errors transformers raises most."""
    text = str(e)
    if "custom code" in text or "trust_remote_code" in text:
        return " (it needs its own Python code: pass --trust-remote-code only if you trust its authors)"
    if "does not recognize this architecture" in text:
        return " (llm42 runs architectures transformers knows; 42dot LLM-SFT is LlamaForCausalLM)"
    return ""


def load_model(src: Source, device: str, dtype: torch.dtype, quantize: str = "none"):
    """Model in eval mode on `device` in `dtype` (quantized if asked or saved so), tokenizer beside it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    from .quantize import is_quantized_dir, load_quantized, quantize_checkpoint, quantize_model

    logging.set_verbosity_error()  # our spinner replaces their progress bars and notices
    logging.disable_progress_bar()
    try:
        tokenizer = _from_hub(AutoTokenizer.from_pretrained, src)
        if src.local and not src.gguf_file and is_quantized_dir(src.path):
            return load_quantized(src.path, dtype), tokenizer
        if quantize != "none" and not src.gguf_file:
            folder = local_folder(src)
            if folder is not None:
                try:  # layer by layer from the file: the full-precision model is never in memory
                    return quantize_checkpoint(folder, quantize, dtype), tokenizer
                except (KeyError, ValueError):
                    pass  # names that need transformers' own loading: take the longer way below
        kw = {"dtype": dtype}
        if not src.allow_pickle and not src.gguf_file:
            kw["use_safetensors"] = True  # never unpickle unless asked: it can run code
        if device != "cpu":
            kw["device_map"] = device  # weights go straight to the GPU, no CPU copy
        model = _from_hub(AutoModelForCausalLM.from_pretrained, src, **kw)
    except LoadError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise LoadError(f"cannot load {src.name}: {first_line(e)}{hint(e)}") from None
    except Exception as e:  # safetensors' own error for a damaged file is none of the above
        if type(e).__name__ != "SafetensorError":
            raise
        raise LoadError(f"the weights of {src.name} are damaged or incomplete ({first_line(e)}); "
                        "download or save them again") from None
    if src.gguf_file:
        model.hf_quantizer = None  # GGUF weights arrive dequantized: a plain model now
    if quantize != "none":
        quantize_model(model, quantize)
    return model.eval(), tokenizer


def local_folder(src: Source) -> Path | None:
    """The folder holding the safetensors: the user's folder or the hub cache's snapshot."""
    if src.local:
        folder = Path(src.path)
    else:
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(src.path, revision=src.revision, local_files_only=True))
        except Exception:
            return None
    has = (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()
    return folder if has else None


def stop_token_ids(model, tokenizer) -> set[int]:
    ids = set()
    for v in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(v, int):
            ids.add(v)
        elif v:
            ids.update(int(i) for i in v)
    return ids


def context_window(config) -> int:
    return int(getattr(config, "max_position_embeddings", None) or 2048)


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
