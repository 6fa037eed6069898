"""Command-line entry: parse, pick the device, load, chat. Errors become one line here."""

from __future__ import annotations

import os
import signal
import sys

from .settings import Settings, UsageError, parse_args
from .signals import on_terminate


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse_args(argv)
    except UsageError as e:
        print(f"llm42: error: {e}", file=sys.stderr)
        return 2
    from .device import DeviceError
    from .loader import LoadError
    from .remote import RemoteError
    from .template import ContextError
    from .transcript import TranscriptError

    signal.signal(signal.SIGTERM, on_terminate)
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
    except (LoadError, DeviceError, RemoteError) as e:
        print(f"llm42: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nllm42: interrupted", file=sys.stderr)
        return 130


def run(settings: Settings) -> int:
    from .engine import open_engine
    from .quantize import save_quantized
    from .remote import RemoteEngine
    from .transcript import find, history_dir, load
    from .ui import UI

    sys.stdin.reconfigure(errors="replace")
    one_shot = settings.prompt is not None or settings.prompt_file is not None
    ui = UI(settings.markdown, interactive=False if one_shot else None)
    folder = history_dir(settings.history_dir)
    resumed = None
    if settings.resume is not None:  # found and read before the model loads: a typo costs nothing
        path = find(settings.resume or None, folder)
        resumed = (path, load(path))
    if settings.endpoint:
        engine = RemoteEngine(settings.endpoint, settings.model, os.environ.get(settings.api_key_env, ""), ui.warn)
        with ui.status(f"connecting to {settings.endpoint}"):
            name = engine.connect()
        ui.info(f"remote: {name} at {settings.endpoint}")
        return chat_with(engine, settings, ui, resumed, folder, name, "remote")
    engine, choice, seconds = open_engine(
        settings.model_path, revision=settings.revision, trust_remote_code=settings.trust_remote_code,
        allow_pickle=settings.allow_pickle, device=settings.device, dtype=settings.dtype, quantize=settings.quantize,
        max_new_tokens=settings.sampling.max_new_tokens, status=ui.status, info=ui.info)
    model, tokenizer = engine.model, engine.tokenizer
    ui.info(f"loaded in {seconds:.1f}s")
    if settings.debug:
        ui.info(f"kernels: {engine.kernels.note}")
    if settings.save_quantized:
        if getattr(model, "llm42_quantize", None) is None:
            raise UsageError("--save-quantized needs --quantize int8 or int4")
        with ui.status(f"saving to {settings.save_quantized}"):
            save_quantized(model, tokenizer, settings.save_quantized)
        ui.info(f"saved; next time start with --model-path {settings.save_quantized}")
    return chat_with(engine, settings, ui, resumed, folder, settings.model_path, choice.device)


def chat_with(engine, settings: Settings, ui, resumed, folder, model_name: str, device: str) -> int:
    """The conversation, local or remote alike: resume or start, then one message or the loop."""
    from .chat import Chat
    from .conversation import Dialog
    from .i18n import Say, pick_language
    from .transcript import Transcript

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
                model_name=model_name, device=device, debug=settings.debug,
                status=settings.status and ui.interactive, verbose=settings.verbose, lang=lang)

    if settings.prompt is not None or settings.prompt_file is not None:
        text = settings.prompt if settings.prompt is not None else _read_prompt_file(settings.prompt_file)
        chat.one_shot = True
        reply = chat.send(text)
        if reply is None:
            return 1
        return 130 if reply.interrupted else 0
    ui.banner(model_name, say("banner"))
    return chat.run()


def _read_prompt_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read --prompt-file {path}: {e.strerror}") from None
