"""A .gguf model converted once to safetensors and kept in the cache: a folder per dtype, checked whole before
it is used, remade when damaged."""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..i18n import t
from ..paths import cache_dir, trim_models, used
from .source import Source

if TYPE_CHECKING:
    import torch


def conversions(src: Source) -> Path:
    """Where a .gguf file's model, converted once to safetensors, is kept: a folder per dtype under a key of the
    file's name, size and modification time (a changed file is converted again)."""
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
            used(folder)
            return replace(src, path=str(folder), gguf_file=None)
        info(t("cache_remade", path=folder))
        shutil.rmtree(folder, ignore_errors=True)
    return None


def converted_before(src: Source) -> Path | None:
    """A whole copy of this .gguf file converted on an earlier start (in any dtype), or None."""
    done = [f.parent for f in sorted(conversions(src).glob("*/config.json")) if whole(f.parent)]
    return done[0] if done else None


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
        trim_models(keep=folder)
        return folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return None


@contextlib.contextmanager
def read_once():
    """While a .gguf model loads: the file parsed once, its metadata read once, each tensor name map built once.
    transformers parses the whole file (SmolLM2's 49k-token vocabulary and merges: 589k fields) and turns every
    field into Python values for the config (twice), the tokenizer and the weights, and builds a name map per module
    (397 for SmolLM2): 28 s of a first start's 52 s on this project's 2-core machines."""
    import copy
    import functools

    import gguf
    import transformers.modeling_gguf_pytorch_utils as hf

    reader, names, checkpoint = gguf.GGUFReader, gguf.get_tensor_name_map, hf.load_gguf_checkpoint
    readers: dict = {}
    metadata: dict = {}

    def read(path, mode="r"):
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = reader(path, mode)
        return readers[key]

    def load(path, return_tensors=False, **kw):
        if return_tensors:
            return checkpoint(path, return_tensors, **kw)
        key = os.fspath(path)
        if key not in metadata:
            metadata[key] = checkpoint(path, return_tensors, **kw)
        return copy.deepcopy(metadata[key])  # the callers change what they are given

    gguf.GGUFReader, gguf.get_tensor_name_map = read, functools.lru_cache(maxsize=None)(names)
    hf.load_gguf_checkpoint = load
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map, hf.load_gguf_checkpoint = reader, names, checkpoint
