"""The local backend: open a model for chat (locate, plan, load, quantize, tune) and reply."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .backend import Response, collect
from .conversation import Dialog, Role
from .cpu import native
from .cpu.flags import cpu_threads
from .cpu.memory import own
from .cpu.pairs import pair
from .cpu.widen import pack
from .errors import UsageError
from .gen.generate import PromptCache, open_cache
from .gen.kvstore import KVStore, limit_bytes
from .gen.speculate import Speculation, speculation_for
from .gen.stream import stream_reply
from .gen.tuning import Kernels, cached, tune
from .i18n import t
from .model.device import probe
from .model.download import fetch
from .model.gguf import converted_before, from_converted, read_once
from .model.loader import load_config, load_model, model_sampling, stop_token_ids
from .model.plan import Decode, LoadPlan, plan
from .model.saved import FORMAT as SAVED_FORMAT
from .model.saved import saved_kind
from .model.source import Source, locate
from .paths import KV_MAGIC, cache_dir, cache_problem
from .settings import ModelSettings, SamplingSettings
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
    cache: PromptCache | None = None
    speculation: Speculation | None = None  # where llm42's step runs: verify costs and acceptance so far
    speculate: bool = False  # draft from the conversation (--speculate, /set speculate)
    sampling_defaults: dict = field(default_factory=dict)  # what the model's generation_config.json sets

    def __post_init__(self) -> None:
        self.cache = self.cache or open_cache(self.model, self.window, self.kernels)

    endpoint = None  # a local model

    def set_speculate(self, on: bool) -> bool:
        """/set speculate: on where llm42's own step runs (its costs measured now if not yet); whether it is on."""
        if on and self.speculation is None:
            self.speculation = speculation_for(self.cache)
        self.speculate = on and self.speculation is not None
        return self.speculate

    def default_system(self) -> str | None:
        return self.fmt.default_system()

    def stored(self) -> tuple[int, int] | None:
        return self.cache.store.summary() if self.cache.store is not None else None

    def keep_for(self, chat: Path | None) -> None:
        if self.cache.store is not None:
            self.cache.store.chat = str(chat.resolve()) if chat is not None else None

    def ready(self, dialog: Dialog) -> None:
        if self.cache.store is not None and dialog.messages:
            ids = self.fmt.encode(dialog.render(dialog.left_out, ids=True))
            if len(ids) < self.window:
                self.cache.preload(ids)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def reply(self, dialog: Dialog, s: SamplingSettings, debug: bool = False) -> Iterator[Response]:
        """The reply stream for the dialog's last message (ContextError at once if it cannot fit). The turns the
        dialog says were left out for the previous reply stay out while the rest fits (see template.fit)."""
        fitted = fit(self.fmt, dialog, s.max_new_tokens, self.window, dialog.left_out)
        return stream_reply(
            self.cache,
            self.tokenizer,
            fitted.ids,
            s,
            self.stop_ids,
            self.fmt.stop_strings,
            debug,
            dropped=fitted.dropped,
            speculation=self.speculation if self.speculate else None,
        )


def kv_key(model, src: Source, p: LoadPlan, kernels: Kernels) -> str:
    """What the numbers in a KV cache depend on, as one key: the model's files (names, sizes, times), how it was
    loaded (dtype, quantization and its format, device), PyTorch, llm42's kernels and the choice among them, the
    KV layout. The chat template is not in it: stored KV is matched token id by token id."""
    root = Path(src.path)
    files = sorted(f for f in root.iterdir() if f.is_file()) if root.is_dir() else []
    if src.gguf_file:
        files = [root / src.gguf_file]
    c = model.config
    parts = {
        "source": (src.path, src.revision),
        "files": [(str(f.resolve()), st.st_size, st.st_mtime_ns) for f in files for st in [f.stat()]],
        "dtype": str(p.dtype),
        "quantize": (p.quantize, SAVED_FORMAT),
        "device": str(model.device),
        "gpu": torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else "",
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "kernels": (native.VERSION, native.target(), repr(kernels)),
        "layout": (c.num_hidden_layers, getattr(c, "num_key_value_heads", None), getattr(c, "head_dim", None)),
        "format": KV_MAGIC.hex(),
    }
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def open_engine(
    m: ModelSettings,
    max_new_tokens: int = 512,
    *,
    fit_reply: bool = False,
    status=contextlib.nullcontext,
    info=lambda text: None,
    warn=None,
) -> tuple[Engine, LoadPlan, float]:
    """Load the model `m` names on the best device; (engine, plan, load seconds). `fit_reply`: max_new_tokens is
    the default, not asked for: a smaller window fits it (plan.max_new_tokens).

    `status(text)` is a context manager shown while waiting (a spinner), `info(text)` a one-line note,
    `warn(text)` one about a flag that has no effect. Everything that can be checked is, before loading."""
    warn = warn or info
    if m.kv_cache_gb is not None and not m.kv_cache_gb >= 0:
        raise UsageError(t("bad_kv_cache", v=m.kv_cache_gb))
    src = locate(m.name, m.revision, m.trust_remote_code, m.allow_pickle)
    if m.device == "cpu" or (m.device == "auto" and not torch.cuda.is_available()):
        native.prefetch()  # a first start compiles llm42's kernels beside the loading
    with read_once() if src.gguf_file and not converted_before(src) else contextlib.nullcontext():
        with status(t("reading_config", path=m.name)):
            config = load_config(src)
        saved = saved_kind(src.path) if src.local and not src.gguf_file else None
        p = plan(m, max_new_tokens, config, saved, probe(), fit_reply)
        for note in p.notes:
            warn(note)
        info(p.line)
        return load(p, src, m.name, status, info, warn, keep=not m.save_quantized, kv_gb=m.kv_cache_gb)


def load(
    p: LoadPlan, src: Source, name: str, status, info, warn, keep: bool = True, kv_gb: float | None = None
) -> tuple[Engine, LoadPlan, float]:
    """Carry out the plan: fetch, load (converting a GGUF, quantizing: the quantized copy kept in the cache unless
    `keep` is False), choose the kernels, open the cache and the KV kept on disk (at most `kv_gb`, see kvstore)."""
    if p.device == "cpu":
        torch.set_num_threads(cpu_threads())
    if (unwritable := cache_problem()) is not None:
        warn(t("cache_unwritable", path=cache_dir(), why=unwritable))
    src = fetch(src)  # a hub model not yet in the cache is downloaded here, with its progress shown
    if src.gguf_file and (plain := from_converted(src, p.dtype, info)) is not None:
        src = plain  # converted on an earlier start
        info(t("gguf_cached", path=src.path))
    start = time.perf_counter()
    verb = (
        t("converting_gguf", path=name)
        if src.gguf_file
        else t("loading_quantizing", kind=p.quantize, path=name)
        if p.quantize != "none"
        else t("loading", path=name)
    )
    with status(verb):
        model, tokenizer = load_model(src, p.device, p.dtype, p.quantize, info, keep)
    kernels = cached(model)
    if kernels is None:  # the first start on this CPU, torch and model shape
        with status(t("measuring_kernels")):
            kernels = tune(model)
    if "WideLinear" in kernels.own_matmuls:
        pack(model)  # bf16 weights in the layout llm42's products read fastest here (where they want one)
    elif "Linear" in kernels.own_matmuls:
        pair(model)  # short bf16 rows two at a time, where the CPU has bf16 arithmetic (cpu/pairs.py)
    own(model)  # what still lies in the file's mapping (see load_model), in memory of its own
    captured = time.perf_counter()
    capturing = status(t("capturing")) if p.decode is Decode.GRAPH else contextlib.nullcontext()
    with capturing:  # the decode step as a CUDA graph
        cache = open_cache(model, p.window, kernels, p.decode, warn=lambda why: warn(t("not_captured", why=why)))
    if cache.graph is not None:
        info(t("captured", s=time.perf_counter() - captured))
    if (limit := limit_bytes(kv_gb)) > 0 and unwritable is None:
        cache.store = KVStore(cache_dir() / "kv", kv_key(model, src, p, kernels), cache.kv, limit)
    speculation = speculation_for(cache) if p.speculate else None
    engine = Engine(
        model,
        tokenizer,
        chat_format(tokenizer, name),
        p.window,
        stop_token_ids(model, tokenizer),
        name,
        p.device,
        kernels,
        cache,
        speculation,
        speculation is not None,
        sampling_defaults=model_sampling(model),
    )
    return engine, p, time.perf_counter() - start


def complete(engine: Engine, question: str, s: SamplingSettings, system: str | None = None) -> tuple[str, Response]:
    """One reply to one message, no UI: (text, final record). Scripts and eval use this."""
    dialog = Dialog(system=system)
    dialog.add(Role.USER, question)
    return collect(engine.reply(dialog, s))
