"""The benchmark's rows, one configuration each, measured in the process that runs it: transformers' usual
script, llm42's engine as the chat opens it, and llama.cpp. Each supplies a `reply`; timing.points times it."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

from ..model.device import peak_memory_gb
from .inputs import bench_model, prompt_ids, prompts
from .timing import points, timed


def run_hf(dtype_name: str, model_dir: Path, new_tokens: int, device: str) -> dict:
    """The usual script: generate() in a thread, text from a TextIteratorStreamer, the whole history each turn."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map=device).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    load = time.perf_counter() - start

    class Streamer(TextIteratorStreamer):  # the text as scripts get it, and each token id as it comes
        def __init__(self):
            super().__init__(tok, skip_prompt=True)
            self.ids: queue.Queue = queue.Queue()

        def put(self, value):
            if not self.next_tokens_are_prompt:
                for i in value.reshape(-1).tolist():
                    self.ids.put(i)
            super().put(value)

        def end(self):
            super().end()
            self.ids.put(None)

    def reply(ids: list[int], n: int, fresh: bool):
        streamer = Streamer()
        x = torch.tensor([ids], device=model.device)
        kw = dict(
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=True,
            temperature=0.5,
            top_p=0.95,
            top_k=20,
            repetition_penalty=1.2,
            streamer=streamer,
            pad_token_id=tok.eos_token_id,
            attention_mask=torch.ones_like(x),
        )
        thread = threading.Thread(target=model.generate, args=(x,), kwargs=kw)
        thread.start()
        try:
            while (token := streamer.ids.get()) is not None:
                yield token
        finally:
            thread.join()

    return dict(load_s=load, **points(reply, prompts(tok), new_tokens))


def run_llm42(model_dir: Path, new_tokens: int, device: str, long_context: int = 0) -> dict:
    """llm42's own engine, as the chat opens it (device, dtype, kernels), without a UI."""
    import torch

    from ..engine import open_engine
    from ..gen.generate import generate_steps
    from ..settings import ModelSettings, SamplingSettings

    start = time.perf_counter()
    # no KV kept between runs: a prompt measured twice is prefilled twice
    engine, _, _ = open_engine(ModelSettings(path=str(model_dir), device=device, kv_cache_gb=0))
    load = time.perf_counter() - start
    cache = engine.cache

    def reply(ids: list[int], n: int, fresh: bool):
        if fresh:
            cache.reset()
        steps = generate_steps(
            cache, ids, SamplingSettings(max_new_tokens=n, seed=0), set(), torch.Generator().manual_seed(0)
        )
        return (step.token for step in steps)

    out = dict(
        load_s=load,
        **points(reply, prompts(engine.tokenizer), new_tokens),
        kernels=engine.kernels.note if engine.kernels else "",
        decode_path=cache.decode.value,
    )
    if long_context:  # decode with a long context in the cache: attention reads it all every step
        out["peak_gb"] = peak_memory_gb(torch.device(device if device.startswith("cuda") else "cpu"))  # before it
        ids = prompt_ids(engine.tokenizer, long_context - new_tokens, 4)
        _, out["decode_tps_long"], _ = timed(reply(ids, new_tokens, True), new_tokens)
        out["long_context"] = long_context
    return out


def run_llama_cpp(width: str, new_tokens: int) -> dict:
    """llama.cpp through llama-cpp-python on the same model as a GGUF, with the same sampling settings."""
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    from ..cpu.flags import cpu_threads
    from .llamacpp import gguf_of

    model, threads = bench_model(), cpu_threads()
    start = time.perf_counter()
    llm = Llama(
        model_path=str(gguf_of(model, width)),
        n_ctx=4096,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=512,
        verbose=False,
    )
    load = time.perf_counter() - start

    def reply(ids: list[int], n: int, fresh: bool):
        if fresh:
            llm.reset()  # else generate() keeps the cached prefix it shares with `ids` (a follow-up wants that)
        return llm.generate(ids, temp=0.5, top_p=0.95, top_k=20, repeat_penalty=1.2)

    return dict(load_s=load, **points(reply, prompts(AutoTokenizer.from_pretrained(model)), new_tokens))
