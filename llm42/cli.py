"""Command-line entry: parse, pick the device, load, chat. Errors become one line here."""

from __future__ import annotations

import os
import sys
import time

from .settings import Settings, UsageError, parse_args


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse_args(argv)
    except UsageError as e:
        print(f"llm42: error: {e}", file=sys.stderr)
        return 2
    from .device import DeviceError
    from .loader import LoadError
    from .template import ContextError

    try:
        return run(settings)
    except (UsageError, ContextError) as e:
        print(f"llm42: error: {e}", file=sys.stderr)
        return 2
    except (LoadError, DeviceError) as e:
        print(f"llm42: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nllm42: interrupted", file=sys.stderr)
        return 130


def run(settings: Settings) -> int:
    import torch

    from .chat import Engine, answer, chat_loop
    from .conversation import Dialog, Role
    from .device import SHORT, choose, estimate_bytes, probe
    from .loader import context_window, load_config, load_model, locate, stop_token_ids
    from .template import chat_format
    from .ui import UI

    sys.stdin.reconfigure(errors="replace")
    one_shot = settings.prompt is not None or settings.prompt_file is not None
    ui = UI(settings.markdown, interactive=False if one_shot else None)
    src = locate(settings.model_path, settings.revision, settings.trust_remote_code)
    with ui.status(f"reading {settings.model_path} config"):
        config = load_config(src)
    window = context_window(config)
    if settings.sampling.max_new_tokens >= window:
        raise UsageError(f"max new tokens ({settings.sampling.max_new_tokens}) must be below the "
                         f"model's {window}-token context window")
    choice = choose(settings.device, settings.dtype, probe(), lambda dt: estimate_bytes(config, dt, window))
    ui.info(f"device {choice.device}, {SHORT[choice.dtype]}: {choice.reason}")
    if choice.device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())

    start = time.perf_counter()
    with ui.status(f"loading {settings.model_path}"):
        model, tokenizer = load_model(src, choice.device, choice.dtype)
    ui.info(f"loaded in {time.perf_counter() - start:.1f}s")
    fmt = chat_format(tokenizer, settings.model_path)
    engine = Engine(model, tokenizer, fmt, window, stop_token_ids(model, tokenizer))
    dialog = Dialog(system=settings.system_prompt)

    if one_shot:
        text = settings.prompt if settings.prompt is not None else _read_prompt_file(settings.prompt_file)
        dialog.add(Role.USER, text)
        reply = answer(engine, dialog, settings.sampling, ui, settings.debug)
        return 130 if reply.interrupted else 0
    ui.banner(settings.model_path)
    return chat_loop(engine, dialog, settings.sampling, ui, settings.debug, choice.device)


def _read_prompt_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read --prompt-file {path}: {e.strerror}") from None
