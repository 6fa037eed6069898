"""Opening a model for chat: locate, choose device and dtype, load, quantize, tune; and replying without a UI."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch

from .conversation import Dialog, Role
from .device import SHORT, Choice, choose, estimate_bytes, gib, probe
from .generate import PromptCache
from .kernels import Kernels, tune
from .loader import Source, context_window, load_config, load_model, locate, stop_token_ids
from .quantize import QUANT_FILE
from .settings import SamplingSettings, UsageError
from .stream import Response, stream_reply
from .template import ChatFormat, chat_format, fit


@dataclass
class Engine:
    """A loaded model with what generation needs to talk to it."""

    model: object
    tokenizer: object
    fmt: ChatFormat
    window: int
    stop_ids: set[int]
    kernels: Kernels | None = None
    cache: PromptCache = field(init=False)

    def __post_init__(self) -> None:
        self.cache = PromptCache(self.model, self.window, self.kernels)

    def reply(self, dialog: Dialog, s: SamplingSettings, debug: bool = False) -> tuple[Iterator[Response], int]:
        """The reply stream for the dialog's last message, and how many old turns were left out to fit."""
        fitted = fit(self.fmt, dialog, s.max_new_tokens, self.window)
        stream = stream_reply(self.cache, self.tokenizer, fitted.ids, s, self.stop_ids, self.fmt.stop_strings, debug)
        return stream, fitted.dropped


def saved_quantization(src: Source) -> str | None:
    """The kind of a folder written by --save-quantized, else None."""
    f = Path(src.path) / QUANT_FILE
    return json.loads(f.read_text()).get("kind") if src.local and not src.gguf_file and f.is_file() else None


def open_engine(model_path: str, *, revision: str | None = None, trust_remote_code: bool = False, allow_pickle: bool = False,
                device: str = "auto", dtype: str = "auto", quantize: str = "none", max_new_tokens: int = 512,
                status=None, info=lambda text: None) -> tuple[Engine, Choice, float]:
    """Load `model_path` on the best device; (engine, device choice, load seconds).

    `status(text)` is a context manager shown while waiting (a spinner), `info(text)` a one-line note."""
    status = status or _quiet
    src = locate(model_path, revision, trust_remote_code, allow_pickle)
    with status(f"reading {model_path} config"):
        config = load_config(src)
    window = context_window(config)
    if max_new_tokens >= window:
        raise UsageError(f"max new tokens ({max_new_tokens}) must be below the model's {window}-token context window")
    kind = saved_quantization(src) or quantize
    wbytes = {"int8": 1.05, "int4": 0.6}.get(kind)
    machine = probe()
    choice = choose("cpu" if kind != "none" and device == "auto" else device, dtype, machine,
                    lambda dt: estimate_bytes(config, dt, window, wbytes))
    if kind != "none" and choice.device != "cpu":
        raise UsageError(f"--quantize runs on the CPU only; on {choice.device} use --dtype bfloat16 or float16")
    if kind != "none":
        choice.dtype = torch.bfloat16  # quantized layers take bf16 activations
        choice.reason = f"{kind} weights run on the CPU; {gib(machine.cpu_available)} RAM available"
    info(f"device {choice.device}, {kind if kind != 'none' else SHORT[choice.dtype]}: {choice.reason}")
    if choice.device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    start = time.perf_counter()
    verb = f"loading and quantizing to {quantize}" if quantize != "none" else "loading"
    with status(f"{verb} {model_path}"):
        model, tokenizer = load_model(src, choice.device, choice.dtype, quantize if kind == quantize else "none")
        kernels = tune(model)
    seconds = time.perf_counter() - start
    fmt = chat_format(tokenizer, model_path)
    return Engine(model, tokenizer, fmt, window, stop_token_ids(model, tokenizer), kernels), choice, seconds


def complete(engine: Engine, question: str, s: SamplingSettings, system: str | None = None) -> tuple[str, Response]:
    """One reply to one message, no UI: (text, final stats). Scripts and eval use this."""
    dialog = Dialog(system=system)
    dialog.add(Role.USER, question)
    parts, stats = [], None
    for r in engine.reply(dialog, s)[0]:
        if r.finish_reason:
            stats = r
        else:
            parts.append(r.text)
    return "".join(parts).strip(), stats


class _Quiet:
    def __init__(self, text: str):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_quiet = _Quiet
