"""The command line: argparse built from the settings' fields (each flag written once, where its setting is) and
the checks across flags, before anything loads."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlparse

from .errors import UsageError
from .i18n import t
from .settings import DEVICE_RE, GROUPS, SAMPLING_TITLE, SamplingSettings, Settings, number_flag


class _Help(argparse.HelpFormatter):
    """Shows a default only where there is one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            action.default not in (None, argparse.SUPPRESS)
            and not isinstance(action.default, bool)
            and "%(default)" not in text
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage dump
        raise UsageError(t("see_help", message=message))


SAMPLING_FLAGS = [(f.name, f.metadata["metavar"], f.metadata["help"]) for f in fields(SamplingSettings)]


def flag_of(f) -> str:
    return f.metadata.get("flag") or "--" + ("no-" if f.metadata.get("switch") and f.default else "") + f.name.replace(
        "_", "-"
    )


def add_flags(p: argparse.ArgumentParser, group: str, cls) -> None:
    """One flag per field of `cls`, from what the field declares; the value lands in `group.name`. Sampling flags
    default to None, so a resumed conversation can tell which were given."""
    g = p.add_argument_group(SAMPLING_TITLE if cls is SamplingSettings else cls.__doc__)
    for f in fields(cls):
        m, dest = f.metadata, f"{group}.{f.name}"
        if m.get("switch"):
            g.add_argument(flag_of(f), dest=dest, action="store_false" if f.default else "store_true", help=m["help"])
            continue
        kw = {k: v for k, v in m.items() if k in ("choices", "nargs", "const", "action")}
        kw["metavar"] = m["metavar"] or (None if "choices" in m else f.name.upper())
        shown = f" (default: {f.default})" if cls is SamplingSettings and f.default is not None else ""
        if cls is SamplingSettings or m.get("number"):
            kw["type"] = number_flag(f.name)
        default = None if cls is SamplingSettings else f.default
        g.add_argument(flag_of(f), dest=dest, default=default, help=m["help"] + shown, **kw)


def setup_arg_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="llm42",
        description="Chat in your terminal with 42dot LLM-SFT or any Hugging Face causal chat model.",
        epilog="In the chat: Enter sends, Esc then Enter adds a new line, Ctrl+C stops a reply, "
        "Ctrl+D or /exit leaves. Piped stdin is read one message per line.",
        formatter_class=_Help,
    )
    for group, cls in GROUPS.items():
        add_flags(p, group, cls)
    return p


def parse_args(argv: list[str] | None = None) -> Settings:
    """Parse and validate; raises UsageError before anything is loaded."""
    ns = vars(setup_arg_parser().parse_args(argv))
    values = {group: {f.name: ns[f"{group}.{f.name}"] for f in fields(cls)} for group, cls in GROUPS.items()}
    given = {k: v for k, v in values.pop("sampling").items() if v is not None}
    s = Settings(
        **{group: GROUPS[group](**kw) for group, kw in values.items()},
        sampling=SamplingSettings(**given),
        sampling_flags=set(given),
    )
    check(s)
    return s


def check(s: Settings) -> None:
    """The flags that cannot go together, or name what is not there; UsageError on the first."""
    m, r, c = s.model, s.remote, s.chat
    if not DEVICE_RE.match(m.device):
        raise UsageError(t("bad_device", device=m.device))
    if c.prompt is not None and c.prompt_file is not None:
        raise UsageError(t("prompt_both"))
    if r.endpoint and (m.quantize != "none" or m.save_quantized):
        raise UsageError(t("endpoint_quantize"))
    if r.endpoint and m.given:
        raise UsageError(t("endpoint_model_path"))
    if r.endpoint is not None:
        url = urlparse(r.endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise UsageError(t("endpoint_not_url", url=r.endpoint))
    if s.conversations.resume == "" and not s.conversations.history:
        raise UsageError(t("resume_no_history"))
    if m.context is not None and m.context < 64:
        raise UsageError(t("bad_context", n=m.context))
    if c.prompt is not None and not c.prompt.strip():
        raise UsageError(t("prompt_empty"))
    if m.save_quantized and m.quantize == "none":
        raise UsageError(t("save_needs_quantize"))
    out = Path(m.save_quantized).expanduser() if m.save_quantized else None
    if out is not None and (out.is_file() or (out.is_dir() and any(out.iterdir()))):
        raise UsageError(t("save_exists", path=m.save_quantized))
