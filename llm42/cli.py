"""Command-line entry: parse, pick the device, load, chat. Errors become one line here."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys

from .args import parse_args
from .chat.signals import discard_typeahead, interrupted_while_starting, on_interrupt_while_starting, on_terminate
from .errors import Llm42Error
from .i18n import set_language, t
from .settings import Settings


def main(argv: list[str] | None = None) -> int:
    set_language()  # the locale's, until --lang is read
    try:
        settings = parse_args(argv)
        set_language(settings.output.lang)
        signal.signal(signal.SIGTERM, on_terminate)
        signal.signal(signal.SIGINT, on_interrupt_while_starting)
        return run(settings)
    except Llm42Error as e:
        if interrupted_while_starting():  # Ctrl+C while loading that a library turned into a load error
            return interrupted()
        print(f"llm42: {t('error')}: {e}", file=sys.stderr)
        return e.exit_code
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:
        return interrupted()
    except BrokenPipeError:  # the reader left (`llm42 --list | head -1`): stop quietly, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 128 + signal.SIGPIPE
    except Exception:
        if not interrupted_while_starting():  # else a Ctrl+C that a library being imported turned into its own error
            raise
        return interrupted()
    finally:
        discard_typeahead()


def interrupted() -> int:
    print(f"\nllm42: {t('interrupted')}", file=sys.stderr)
    return 130


def run(settings: Settings) -> int:
    from .chat.commands import system_
    from .chat.files import read_text
    from .chat.loop import Chat, Options
    from .chat.record import Record, list_text
    from .chat.transcript import find, first_event, newest_first
    from .chat.ui import UI
    from .conversation import Dialog
    from .paths import history_dir

    folder = history_dir(settings.conversations.history_dir)
    if settings.conversations.list:
        print(list_text(folder) or t("list_empty", folder=folder))
        return 0
    sys.stdin.reconfigure(errors="replace")
    one_shot = settings.chat.prompt is not None or settings.chat.prompt_file is not None
    ui = UI(settings.output.markdown and not settings.output.debug, interactive=False if one_shot else None)
    ui.conversations = lambda: [p.stem for p in newest_first(folder)]
    resumed = None
    if settings.conversations.resume is not None:  # found before the model loads: a typo costs nothing
        resumed = find(settings.conversations.resume or None, folder)
        settings = recorded_backend(settings, first_event(resumed), ui)
    text = settings.chat.prompt
    if settings.chat.prompt_file is not None:  # read before the model loads too
        text = read_prompt_file(settings.chat.prompt_file)
    files = [read_text(path) for path in settings.chat.file or []]
    if not settings.remote.endpoint:
        from .model.source import locate

        locate(
            settings.model.name, settings.model.revision, settings.model.trust_remote_code, settings.model.allow_pickle
        )
    if settings.remote.endpoint:
        backend = connect(settings, ui)
    else:
        backend, longest = open_local(settings, ui)
        sampling = dataclasses.replace(settings.sampling, max_new_tokens=longest)
        settings = dataclasses.replace(settings, sampling=sampling)
    settings = model_defaults(settings, backend.sampling_defaults, ui)
    mode = "one-shot" if one_shot else "chat" if ui.interactive else "piped"
    record = Record(
        folder,
        backend.name,
        write=settings.conversations.history,
        mode=mode,
        endpoint=backend.endpoint,
        warn=lambda why: ui.warn(t("transcript_failed", why=why)),
    )
    options = Options(
        debug=settings.output.debug,
        status=settings.output.status and (ui.interactive or settings.output.verbose),
        verbose=settings.output.verbose,
        pinned=settings.sampling_flags,
    )
    chat = Chat(backend, ui, record, settings.sampling, Dialog(system=settings.chat.system_prompt), options)
    chat.attached = files  # they go with the first message
    if resumed is not None:
        chat.resume(str(resumed))
        if not settings.conversations.resume:
            ui.info(t("resumed_which", id=resumed.stem))
        if settings.chat.system_prompt is not None and settings.chat.system_prompt != chat.dialog.system:
            system_(chat, settings.chat.system_prompt)
    if interrupted_while_starting():  # a Ctrl+C while loading that a library swallowed: it was still meant
        raise KeyboardInterrupt
    if one_shot:
        return chat.ask_once(text)
    ui.banner(backend.name, t("banner"))
    return chat.run()


def model_defaults(settings: Settings, defaults: dict, ui) -> Settings:
    """The sampling values the model's own files set, where no flag gives one (said in one line)."""
    from .settings import SPOKEN

    taken = {k: v for k, v in defaults.items() if k not in settings.sampling_flags}
    if not taken:
        return settings
    try:
        sampling = dataclasses.replace(settings.sampling, **taken)  # checked as a flag would be
    except Llm42Error as e:
        ui.warn(t("model_defaults_bad", why=e))
        return settings
    ui.info(t("model_defaults", values=", ".join(f"{SPOKEN.get(k, k)} {v}" for k, v in taken.items())))
    return dataclasses.replace(settings, sampling=sampling)


def recorded_backend(settings: Settings, start: dict, ui) -> Settings:
    """--resume goes on with the model (or server) the conversation was recorded with, unless the command line
    names another, which it then says."""
    model, endpoint = start.get("model"), start.get("endpoint")
    recorded = f"{model} at {endpoint}" if endpoint else model
    if not isinstance(model, str) or not model:
        return settings
    if settings.model.given or settings.remote.endpoint:
        now = (
            f"{settings.remote.model or 'its model'} at {settings.remote.endpoint}"
            if settings.remote.endpoint
            else settings.model.name
        )
        if (
            settings.remote.endpoint,
            settings.model.name if not settings.remote.endpoint else settings.remote.model,
        ) != (endpoint, model):
            ui.info(t("resume_other", recorded=recorded, now=now))
        return settings
    ui.info(t("resume_recorded", model=recorded))
    if isinstance(endpoint, str) and endpoint:
        return dataclasses.replace(
            settings, remote=dataclasses.replace(settings.remote, endpoint=endpoint, model=model)
        )
    return dataclasses.replace(settings, model=dataclasses.replace(settings.model, path=model))


def connect(settings: Settings, ui):
    """The remote backend, checked: the server answers and has the model."""
    from .remote import RemoteEngine

    backend = RemoteEngine(
        settings.remote.endpoint, settings.remote.model, os.environ.get(settings.remote.api_key_env, ""), ui.warn
    )
    with ui.status(t("connecting", url=settings.remote.endpoint)):
        name = backend.connect()
    ui.info(t("remote", name=name, url=backend.base_url))
    return backend


def open_local(settings: Settings, ui):
    """The local backend: device chosen, model loaded (and saved quantized if asked); (engine, the longest reply)."""
    with ui.status(t("importing")):  # transformers is imported later, and only for a model llm42's Llama cannot run
        from .engine import open_engine
    from .model.saved import save_quantized

    fit = "max_new_tokens" not in settings.sampling_flags
    m = settings.model
    if not settings.conversations.history:  # nothing of the conversation on disk: its token ids and KV neither
        m = dataclasses.replace(m, kv_cache_gb=0)
    engine, p, _ = open_engine(
        m, settings.sampling.max_new_tokens, fit_reply=fit, status=ui.status, info=ui.info, warn=ui.warn
    )
    ui.info(t("loaded_in", s=since_start()))
    if settings.output.debug:
        from .cpu import native

        decoder = engine.cache.decoder  # every product llm42's: the whole step in one call into C
        one_call = "; a step's layers in one call" if decoder is not None and decoder.step_spec is not None else ""
        ui.info(f"kernels: {native.describe()}; {engine.kernels.note}{one_call}")
    if settings.model.save_quantized:
        with ui.status(t("saving", path=settings.model.save_quantized)):
            save_quantized(engine.model, engine.tokenizer, settings.model.save_quantized)
        ui.info(t("saved_quantized", path=settings.model.save_quantized))
    return engine, p.max_new_tokens


def since_start() -> float:
    """Seconds since this process started (imports included: what the user waited)."""
    import time

    import psutil

    return max(0.0, time.time() - psutil.Process().create_time())


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
