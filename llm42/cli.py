"""Command-line entry: parse, pick the device, load, chat. Errors become one line here."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys

from .errors import Llm42Error
from .i18n import set_language, t
from .settings import Settings, parse_args
from .signals import discard_typeahead, on_terminate


def main(argv: list[str] | None = None) -> int:
    set_language()  # the locale's, until --lang is read
    try:
        settings = parse_args(argv)
        set_language(settings.lang)
        signal.signal(signal.SIGTERM, on_terminate)
        return run(settings)
    except Llm42Error as e:
        print(f"llm42: {t('error')}: {e}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        print(f"\nllm42: {t('interrupted')}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`llm42 --list | head -1`): stop quietly, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 128 + signal.SIGPIPE
    finally:
        discard_typeahead()


def run(settings: Settings) -> int:
    from .chat import Chat, Options
    from .commands import list_text
    from .conversation import Dialog
    from .record import Record
    from .paths import history_dir
    from .transcript import find, first_event, newest_first
    from .ui import UI

    folder = history_dir(settings.history_dir)
    if settings.list:
        print(list_text(folder) or t("list_empty", folder=folder))
        return 0
    sys.stdin.reconfigure(errors="replace")
    one_shot = settings.prompt is not None or settings.prompt_file is not None
    ui = UI(settings.markdown and not settings.debug, interactive=False if one_shot else None)
    ui.conversations = lambda: [p.stem for p in newest_first(folder)]
    resumed = None
    if settings.resume is not None:  # found before the model loads: a typo costs nothing
        resumed = find(settings.resume or None, folder)
        settings = recorded_backend(settings, first_event(resumed), ui)
    text = settings.prompt
    if settings.prompt_file is not None:  # read before the model loads too
        text = read_prompt_file(settings.prompt_file)
    if not settings.endpoint:
        from .loader import locate

        locate(settings.model_path, settings.revision, settings.trust_remote_code, settings.allow_pickle)
    backend = connect(settings, ui) if settings.endpoint else open_local(settings, ui)
    mode = "one-shot" if one_shot else "chat" if ui.interactive else "piped"
    record = Record(folder, backend.name, write=settings.history, mode=mode, endpoint=getattr(backend, "base_url", None),
                    warn=lambda why: ui.warn(t("transcript_failed", why=why)))
    options = Options(debug=settings.debug, status=settings.status and (ui.interactive or settings.verbose),
                      verbose=settings.verbose, pinned=settings.sampling_flags)
    chat = Chat(backend, ui, record, settings.sampling, Dialog(system=settings.system_prompt), options)
    if resumed is not None:
        chat.resume(str(resumed))
        if not settings.resume:
            ui.info(t("resumed_which", id=resumed.stem))
        if settings.system_prompt is not None and settings.system_prompt != chat.dialog.system:
            chat.do_system(settings.system_prompt)
    if one_shot:
        return chat.ask_once(text)
    ui.banner(backend.name, t("banner"))
    return chat.run()


def recorded_backend(settings: Settings, start: dict, ui) -> Settings:
    """--resume goes on with the model (or server) the conversation was recorded with, unless the command line
    names another, which it then says."""
    model, endpoint = start.get("model"), start.get("endpoint")
    recorded = f"{model} at {endpoint}" if endpoint else model
    if not isinstance(model, str) or not model:
        return settings
    if settings.model_given or settings.endpoint:
        now = f"{settings.model or 'its model'} at {settings.endpoint}" if settings.endpoint else settings.model_path
        if (settings.endpoint, settings.model_path if not settings.endpoint else settings.model) != (endpoint, model):
            ui.info(t("resume_other", recorded=recorded, now=now))
        return settings
    ui.info(t("resume_recorded", model=recorded))
    if isinstance(endpoint, str) and endpoint:
        return dataclasses.replace(settings, endpoint=endpoint, model=model)
    return dataclasses.replace(settings, model_path=model)


def connect(settings: Settings, ui):
    """The remote backend, checked: the server answers and has the model."""
    from .remote import RemoteEngine

    backend = RemoteEngine(settings.endpoint, settings.model, os.environ.get(settings.api_key_env, ""), ui.warn)
    with ui.status(t("connecting", url=settings.endpoint)):
        name = backend.connect()
    ui.info(t("remote", name=name, url=backend.base_url))
    return backend


def open_local(settings: Settings, ui):
    """The local backend: device chosen, model loaded (and saved quantized if asked)."""
    from .engine import open_engine
    from .saved import save_quantized

    engine, _, seconds = open_engine(
        settings.model_path, revision=settings.revision, trust_remote_code=settings.trust_remote_code,
        allow_pickle=settings.allow_pickle, device=settings.device, dtype=settings.dtype, quantize=settings.quantize,
        max_new_tokens=settings.sampling.max_new_tokens, context=settings.context, status=ui.status, info=ui.info,
        warn=ui.warn)
    ui.info(t("loaded_in", s=seconds))
    if settings.debug:
        from . import native

        ui.info(f"kernels: {native.describe()}; {engine.kernels.note}")
    if settings.save_quantized:
        with ui.status(t("saving", path=settings.save_quantized)):
            save_quantized(engine.model, engine.tokenizer, settings.save_quantized)
        ui.info(t("saved_quantized", path=settings.save_quantized))
    return engine


def read_prompt_file(path: str) -> str:
    from .errors import UsageError

    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError as e:
            raise UsageError(t("prompt_file_unreadable", path=path, why=e.strerror)) from None
    if not text.strip():
        raise UsageError(t("prompt_file_empty", path=path))
    return text
