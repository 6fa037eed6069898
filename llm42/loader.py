"""Loading: find the model (hub id, folder or .gguf), read its config, load weights and tokenizer. Finding
imports nothing heavy (no torch): a wrong path is said before the libraries load."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from .errors import Llm42Error
from .i18n import t


class LoadError(Llm42Error):
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
            raise LoadError(t("pickle_only", path=model_path, file=pickles[0]))
    return src


def _locate(model_path: str, revision: str | None, trust_remote_code: bool) -> Source:
    p = Path(model_path).expanduser()
    if model_path.lower().endswith(".gguf"):
        if not p.is_file():
            raise LoadError(t("no_gguf", path=model_path))
        return Source(model_path, str(p.parent), p.name, True, revision, trust_remote_code)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise LoadError(t("no_config", path=model_path))
        return Source(model_path, str(p), None, True, revision, trust_remote_code)
    if p.exists() or model_path.startswith((".", "/", "~")) or model_path.count("/") > 1:
        raise LoadError(t("no_folder", path=model_path))
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
    return LoadError(t("offline", name=src.name))


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


def hint(e: BaseException) -> str:
    """What to do about the errors transformers raises most."""
    text = str(e)
    if "custom code" in text or "trust_remote_code" in text:
        return t("hint_remote_code")
    if "does not recognize this architecture" in text:
        return t("hint_arch")
    return ""


def load_model(src: Source, device: str, dtype: torch.dtype, quantize: str = "none", info=lambda text: None):
    """Model in eval mode on `device` in `dtype` (quantized if asked or saved so), tokenizer beside it.
    A .gguf model is converted once and kept in the cache (`info` says where). On a CPU without bf16
    arithmetic, its bf16 layers take their prefill through fp32 (widen.py)."""
    model, tokenizer = _load_model(src, device, dtype, quantize, info)
    if device == "cpu":
        from .widen import widen_prefill

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
        if quantize != "none" and src.local and not src.gguf_file and _has_weights(Path(src.path)):
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

            gguf_utils.tqdm = _silent()
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


WEIGHTS = ("*.safetensors", "*.safetensors.index.json")
ALWAYS = ("*.json", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.jinja")  # config, tokenizer, chat template


def fetch(src: Source) -> Source:
    """A hub model as a folder on disk: the hub cache's copy, or downloaded now with each file's progress
    (bytes, total, rate, time left) on stderr. Safetensors only, unless the repo has none and pickles are allowed."""
    if src.local:
        return src
    from huggingface_hub import snapshot_download

    kw = dict(repo_id=src.path, revision=src.revision)
    try:
        folder = Path(snapshot_download(**kw, local_files_only=True, allow_patterns=[*ALWAYS, *WEIGHTS]))
        if _has_weights(folder):
            return replace(src, path=str(folder), local=True)
    except Exception:
        pass  # not (all) in the cache
    if not hub_reachable():
        raise _offline_error(src)
    from fnmatch import fnmatch

    from huggingface_hub import HfApi, hf_hub_download

    try:
        files = [s.rfilename for s in HfApi().model_info(src.path, revision=src.revision).siblings or []]
        weights = list(WEIGHTS)
        if not any(f.endswith(".safetensors") for f in files):
            pickles = sorted(f for f in files if f.endswith(tuple(p[1:] for p in PICKLES)))
            if pickles and not src.allow_pickle:
                raise LoadError(t("pickle_only", path=src.name, file=pickles[0]))
            weights = list(PICKLES)
        extra = ["*.py"] if src.trust_remote_code else []
        wanted = [f for f in files if any(fnmatch(f, p) for p in [*ALWAYS, *weights, *extra])]
        folder = None
        for f in sorted(wanted, key=lambda f: any(fnmatch(f, p) for p in weights)):  # small files first
            big = any(fnmatch(f, p) for p in weights)
            path = hf_hub_download(**kw, filename=f, tqdm_class=_progress_bar() if big else _silent())
            folder = Path(path[: -len(f)])
    except LoadError:
        raise
    except Exception as e:
        raise LoadError(t("cannot_load", name=src.name, why=first_line(e), hint=hint(e))) from None
    if folder is None or not _has_weights(folder):
        raise LoadError(t("cannot_load", name=src.name, why=t("no_weights"), hint=""))
    return replace(src, path=str(folder), local=True)


def _progress_bar():
    """A download's progress on the terminal: file, bytes of total, rate, time left. Off the terminal
    (a script's log) one line when the file starts instead of a bar redrawn in place."""
    import sys

    from tqdm.auto import tqdm

    class Bar(tqdm):
        def __init__(self, *args, **kw):
            kw.pop("name", None)
            kw["desc"] = str(kw.get("desc") or "").rsplit("/", 1)[-1]  # the file's name, not its URL
            kw.update(disable=False, file=sys.stderr, dynamic_ncols=True, mininterval=0.25)
            if not sys.stderr.isatty():
                kw.update(disable=True)
                print(t("downloading", file=kw.get("desc", "?"), size=_size(kw.get("total"))), file=sys.stderr)
            super().__init__(*args, **kw)

    return Bar


def _size(n: int | None) -> str:
    return "?" if not n else f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _silent():
    from tqdm.auto import tqdm

    class Silent(tqdm):
        def __init__(self, *args, **kw):
            kw.pop("name", None)
            super().__init__(*args, **{**kw, "disable": True})

    return Silent


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(any(folder.glob(p)) for p in WEIGHTS)


def conversions(src: Source) -> Path:
    """Where a .gguf file's model, converted once to safetensors, is kept: a folder per dtype under a key of the
    file's name, size and modification time (a changed file is converted again)."""
    from .paths import cache_dir

    f = Path(src.path) / src.gguf_file
    st = f.stat()
    return cache_dir() / "gguf" / f"{f.stem}-{st.st_size}-{st.st_mtime_ns}"


def converted(src: Source, dtype: torch.dtype) -> Path:
    return conversions(src) / str(dtype).removeprefix("torch.")


CONVERTED = "llm42_converted.json"  # written last in a converted folder: its files and their sizes


def whole(folder: Path) -> bool:
    """A converted folder as it was written: its list of files present, every size as listed, config.json JSON."""
    import json

    try:
        files = json.loads((folder / CONVERTED).read_text())["files"]
        json.loads((folder / "config.json").read_text())
        return isinstance(files, dict) and all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _writer_alive(partial: Path) -> bool:
    """Whether the process that writes `NAME.PID.partial` still runs."""
    import psutil

    pid = partial.name.removesuffix(".partial").rpartition(".")[2]
    return pid.isdigit() and psutil.pid_exists(int(pid))


def from_converted(src: Source, dtype: torch.dtype, info=lambda text: None) -> Source | None:
    """The converted copy of a .gguf model as a plain local folder, if one was made before and is whole; a
    damaged one (a truncated file, a bad disk) is removed, to be converted again."""
    import shutil

    wanted = converted(src, dtype)
    for folder in [wanted, *sorted(p for p in conversions(src).glob("*") if p.is_dir() and p != wanted)]:
        if folder.name.endswith(".partial"):  # a conversion killed midway leaves one; removed once its writer is gone
            if not _writer_alive(folder):
                shutil.rmtree(folder, ignore_errors=True)
            continue
        if not folder.exists():
            continue
        if whole(folder):  # another dtype's copy serves too: loading casts it, no second conversion
            return replace(src, path=str(folder), gguf_file=None)
        info(t("cache_remade", path=folder))
        shutil.rmtree(folder, ignore_errors=True)
    return None


def keep_converted(model, tokenizer, src: Source, dtype: torch.dtype) -> Path | None:
    """Save a model just read from a .gguf file as safetensors, so the next start loads in a second, not
    a quarter of a minute; None if the cache cannot be written (the chat goes on)."""
    import json
    import shutil

    folder = converted(src, dtype)
    tmp = folder.with_name(folder.name + f".{os.getpid()}.partial")
    try:
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        sizes = {f.name: f.stat().st_size for f in tmp.iterdir()}
        (tmp / CONVERTED).write_text(json.dumps({"files": sizes}))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        return folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return None


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
