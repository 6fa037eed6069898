"""Command-line entry: parse, pick the device, load, chat. Errors become one line here."""

from __future__ import annotations

import os
import signal
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
    from .transcript import TranscriptError

    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(settings)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except TranscriptError as e:
        print(f"llm42: error: {e}", file=sys.stderr)
        return 1
    except (UsageError, ContextError) as e:
        print(f"llm42: error: {e}", file=sys.stderr)
        return 2
    except (LoadError, DeviceError) as e:
        print(f"llm42: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nllm42: interrupted", file=sys.stderr)
        return 130


def _terminate(signum, frame):
    """SIGTERM: every completed turn is already on disk; leave like Ctrl+D does."""
    raise SystemExit(143)


def run(settings: Settings) -> int:
    import torch

    from .chat import Chat, Engine
    from .conversation import Dialog
    from .device import SHORT, choose, estimate_bytes, gib, probe
    from .i18n import Say, pick_language
    from .kernels import tune
    from .loader import context_window, load_config, load_model, locate, stop_token_ids
    from .quantize import save_quantized
    from .template import chat_format
    from .transcript import Transcript, find, history_dir, load
    from .ui import UI

    sys.stdin.reconfigure(errors="replace")
    one_shot = settings.prompt is not None or settings.prompt_file is not None
    ui = UI(settings.markdown, interactive=False if one_shot else None)
    folder = history_dir(settings.history_dir)
    resumed = None
    if settings.resume is not None:  # found and read before the model loads: a typo costs nothing
        path = find(settings.resume or None, folder)
        resumed = (path, load(path))
    src = locate(settings.model_path, settings.revision, settings.trust_remote_code)
    with ui.status(f"reading {settings.model_path} config"):
        config = load_config(src)
    window = context_window(config)
    if settings.sampling.max_new_tokens >= window:
        raise UsageError(f"max new tokens ({settings.sampling.max_new_tokens}) must be below the "
                         f"model's {window}-token context window")
    quantize = saved_quantization(src) or settings.quantize
    wbytes = {"int8": 1.05, "int4": 0.6}.get(quantize)
    m = probe()
    choice = choose("cpu" if quantize != "none" and settings.device == "auto" else settings.device, settings.dtype,
                    m, lambda dt: estimate_bytes(config, dt, window, wbytes))
    if quantize != "none" and choice.device != "cpu":
        raise UsageError(f"--quantize runs on the CPU only; on {choice.device} use --dtype bfloat16 or float16")
    if quantize != "none":
        choice.dtype = torch.bfloat16  # quantized layers take bf16 activations
        choice.reason = f"{quantize} weights run on the CPU; {gib(m.cpu_available)} RAM available"
    ui.info(f"device {choice.device}, {quantize if quantize != 'none' else SHORT[choice.dtype]}: {choice.reason}")
    if choice.device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())

    start = time.perf_counter()
    verb = f"loading and quantizing to {settings.quantize}" if settings.quantize != "none" else "loading"
    with ui.status(f"{verb} {settings.model_path}"):
        model, tokenizer = load_model(src, choice.device, choice.dtype, settings.quantize if quantize == settings.quantize else "none")
        kernels = tune(model)
    ui.info(f"loaded in {time.perf_counter() - start:.1f}s")
    if settings.debug:
        ui.info(f"kernels: {kernels.note}")
    if settings.save_quantized:
        if getattr(model, "llm42_quantize", None) is None:
            raise UsageError("--save-quantized needs --quantize int8 or int4")
        with ui.status(f"saving to {settings.save_quantized}"):
            save_quantized(model, tokenizer, settings.save_quantized)
        ui.info(f"saved; next time start with --model-path {settings.save_quantized}")
    fmt = chat_format(tokenizer, settings.model_path)
    engine = Engine(model, tokenizer, fmt, window, stop_token_ids(model, tokenizer), kernels)
    lang = pick_language(settings.lang)
    say = Say(lang)
    dialog = Dialog(system=settings.system_prompt)
    transcript = None
    if resumed is not None:
        path, loaded = resumed
        dialog = loaded.dialog
        if settings.system_prompt is not None:
            dialog.system = settings.system_prompt
        if settings.history:
            transcript = Transcript(path, lambda why: ui.warn(say("transcript_failed", why=why)))
            if loaded.dropped_unanswered:
                transcript.write("truncate", keep=len(dialog.messages))
        ui.info(say("resumed", n=len(dialog.messages), path=path))
        if loaded.dropped_unanswered:
            ui.info(say("unanswered"))
        if loaded.skipped:
            ui.info(say("skipped", n=loaded.skipped))
    elif settings.history:
        transcript = Transcript.create(folder, lambda why: ui.warn(say("transcript_failed", why=why)))
    chat = Chat(engine, dialog, settings.sampling, ui, say, transcript=transcript, history=folder,
                model_name=settings.model_path, device=choice.device, debug=settings.debug,
                status=settings.status and ui.interactive, verbose=settings.verbose, lang=lang)

    if one_shot:
        text = settings.prompt if settings.prompt is not None else _read_prompt_file(settings.prompt_file)
        reply = chat.send(text)
        if reply is None:
            return 1
        return 130 if reply.interrupted else 0
    ui.banner(settings.model_path, say("banner"))
    return chat.run()


def saved_quantization(src) -> str | None:
    """The kind of a folder written by --save-quantized, else None."""
    import json
    from pathlib import Path

    from .quantize import QUANT_FILE

    f = Path(src.path) / QUANT_FILE
    return json.loads(f.read_text()).get("kind") if src.local and not src.gguf_file and f.is_file() else None


def _read_prompt_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read --prompt-file {path}: {e.strerror}") from None
