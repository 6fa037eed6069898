"""The local backend: open a model for chat (locate, choose device and dtype, load, quantize, tune) and reply."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from .backend import Response, collect
from .conversation import Dialog, Role
from .device import SHORT, Choice, choose, cpu_threads, estimate_bytes, gib, probe
from .generate import PromptCache
from .i18n import t
from .kernels import Kernels, cached, tune
from .loader import context_window, fetch, from_converted, load_config, load_model, locate, stop_token_ids
from .paths import cache_dir, cache_problem
from .saved import saved_kind
from .settings import SamplingSettings, UsageError
from .stream import stream_reply
from .template import ChatFormat, chat_format, fit


@dataclass
class Engine:
    """A loaded model with what generation needs to talk to it."""

    model: object
    tokenizer: object
    fmt: ChatFormat
    window: int
    stop_ids: set[int]
    name: str = ""
    device: str = "cpu"
    kernels: Kernels | None = None
    cache: PromptCache = field(init=False)
    left_out: tuple[int, int] = (0, 0)  # turns left out for the last reply, and a fingerprint of them

    def __post_init__(self) -> None:
        self.cache = PromptCache(self.model, self.window, self.kernels)

    def default_system(self) -> str | None:
        return self.fmt.default_system()

    def reply(self, dialog: Dialog, s: SamplingSettings, debug: bool = False) -> Iterator[Response]:
        """The reply stream for the dialog's last message (ContextError at once if it cannot fit). Turns left
        out for the previous reply stay out while they are the same turns (see template.fit)."""
        start, mark = self.left_out
        fitted = fit(self.fmt, dialog, s.max_new_tokens, self.window, start if _mark(dialog, start) == mark else 0)
        self.left_out = (fitted.dropped, _mark(dialog, fitted.dropped))
        return stream_reply(self.cache, self.tokenizer, fitted.ids, s, self.stop_ids, self.fmt.stop_strings, debug,
                            dropped=fitted.dropped)


def _mark(dialog: Dialog, turns: int) -> int:
    """A fingerprint of the dialog's first `turns` turns (an /undo, /load or /reset changes it)."""
    return hash(tuple((m.role, m.content) for turn in dialog.turns()[:turns] for m in turn))


def open_engine(model_path: str, *, revision: str | None = None, trust_remote_code: bool = False, allow_pickle: bool = False,
                device: str = "auto", dtype: str = "auto", quantize: str = "none", max_new_tokens: int = 512,
                context: int | None = None,
                status=contextlib.nullcontext, info=lambda text: None,
                warn=None) -> tuple[Engine, Choice, float]:
    """Load `model_path` on the best device; (engine, device choice, load seconds).

    `status(text)` is a context manager shown while waiting (a spinner), `info(text)` a one-line note,
    `warn(text)` one about a flag that has no effect. Everything that can be checked is, before loading."""
    warn = warn or info
    src = locate(model_path, revision, trust_remote_code, allow_pickle)
    with status(t("reading_config", path=model_path)):
        config = load_config(src)
    window = min(context_window(config), context or 1 << 30)
    if context and context > window:
        warn(t("context_capped", asked=context, most=window))
    if max_new_tokens >= window:
        raise UsageError(t("max_new_window", n=max_new_tokens, window=window))
    saved = saved_kind(src.path) if src.local and not src.gguf_file else None
    if saved and quantize not in ("none", saved):
        warn(t("no_effect_quantize", asked=quantize, path=model_path, kind=saved))
    kind = saved or quantize
    if kind != "none" and dtype not in ("auto", "bfloat16"):
        warn(t("no_effect_dtype", dtype=dtype, kind=kind))
    wbytes = {"int8": 1.05, "int4": 0.6}.get(kind)
    machine = probe()
    choice = choose("cpu" if kind != "none" and device == "auto" else device, dtype, machine,
                    lambda dt, tokens: estimate_bytes(config, dt, tokens, wbytes), window)
    if kind != "none" and choice.device != "cpu":
        raise UsageError(t("quantize_cpu_only", device=choice.device))
    if kind != "none":
        choice.dtype = torch.bfloat16  # quantized layers take bf16 activations
        choice.reason = t("quantized_reason", kind=kind, ram=gib(machine.cpu_available))
    info(t("device_line", device=choice.device, kind=kind if kind != "none" else SHORT[choice.dtype], reason=choice.reason))
    window = choice.window or window
    if max_new_tokens >= window:
        raise UsageError(t("max_new_window", n=max_new_tokens, window=window))
    if choice.device == "cpu":
        torch.set_num_threads(cpu_threads())
    if (why := cache_problem()) is not None:
        warn(t("cache_unwritable", path=cache_dir(), why=why))
    src = fetch(src)  # a hub model not yet in the cache is downloaded here, with its progress shown
    if src.gguf_file and (plain := from_converted(src, choice.dtype, info)) is not None:
        src = plain  # converted on an earlier start
        info(t("gguf_cached", path=src.path))
    start = time.perf_counter()
    verb = (t("converting_gguf", path=model_path) if src.gguf_file else
            t("loading_quantizing", kind=quantize, path=model_path) if kind == quantize != "none" else
            t("loading", path=model_path))
    with status(verb):
        model, tokenizer = load_model(src, choice.device, choice.dtype, "none" if saved else quantize, info)
    kernels = cached(model)
    if kernels is None:  # the first start on this CPU, torch and model shape
        with status(t("measuring_kernels")):
            kernels = tune(model)
    fmt = chat_format(tokenizer, model_path)
    cuda = choice.device.startswith("cuda")
    captured = time.perf_counter()
    with status(t("capturing")) if cuda else contextlib.nullcontext():  # the decode step as a CUDA graph
        engine = Engine(model, tokenizer, fmt, window, stop_token_ids(model, tokenizer), model_path, choice.device,
                        kernels)
    if engine.cache.graph is not None:
        info(t("captured", s=time.perf_counter() - captured))
    elif engine.cache.graph_error:
        warn(t("not_captured", why=engine.cache.graph_error))
    seconds = time.perf_counter() - start
    return engine, choice, seconds


def complete(engine: Engine, question: str, s: SamplingSettings, system: str | None = None) -> tuple[str, Response]:
    """One reply to one message, no UI: (text, final record). Scripts and eval use this."""
    dialog = Dialog(system=system)
    dialog.add(Role.USER, question)
    return collect(engine.reply(dialog, s))
