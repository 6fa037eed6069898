"""Settings dataclasses and the command-line parser that fills them."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlparse

from .errors import UsageError
from .i18n import t

DEFAULT_MODEL = "42dot/42dot_LLM-SFT-1.3B"
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZE = ("none", "int8", "int4")


@dataclass
class SamplingSettings:
    """How one reply is sampled; 42dot's recommended defaults."""

    temperature: float = 0.5
    top_p: float = 0.95
    top_k: int = 20
    repetition_penalty: float = 1.2
    max_new_tokens: int = 512
    seed: int | None = None

    def __post_init__(self) -> None:
        check_sampling(self)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def check_sampling(s: SamplingSettings) -> None:
    """Raise UsageError naming the first out-of-range value."""
    if not s.temperature >= 0:
        raise UsageError(t("bad_temperature", v=s.temperature))
    if not 0 < s.top_p <= 1:
        raise UsageError(t("bad_top_p", v=s.top_p))
    if s.top_k < 0:
        raise UsageError(t("bad_top_k", v=s.top_k))
    if not s.repetition_penalty > 0:
        raise UsageError(t("bad_penalty", v=s.repetition_penalty))
    if s.max_new_tokens < 1:
        raise UsageError(t("bad_max_new", v=s.max_new_tokens))


@dataclass
class Settings:
    """Everything one run of the CLI needs, as parsed from the command line."""

    model_path: str = DEFAULT_MODEL
    model_given: bool = False  # --model-path on the command line (else --resume takes the recorded model)
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    device: str = "auto"
    dtype: str = "auto"
    quantize: str = "none"
    context: int | None = None
    save_quantized: str | None = None
    endpoint: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    system_prompt: str | None = None
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    sampling_flags: set[str] = field(default_factory=set)  # the sampling settings given as flags
    markdown: bool = True
    status: bool = True
    verbose: bool = False
    lang: str | None = None
    resume: str | None = None  # "" for the most recent
    history_dir: str | None = None
    history: bool = True
    list: bool = False
    debug: bool = False
    prompt: str | None = None
    prompt_file: str | None = None


SAMPLING_NAMES = tuple(f.name for f in fields(SamplingSettings))
WHOLE = ("top_k", "max_new_tokens", "seed", "context")  # the sampling settings that are whole numbers
SPOKEN = {"top_p": "top-p", "top_k": "top-k", "repetition_penalty": "repetition penalty",
          "max_new_tokens": "max new tokens"}  # as messages name them


def parse_number(name: str, text: str):
    """`text` as the sampling setting `name` needs it (int or float); UsageError naming both when it is not.
    Flags and /set both parse through here. "none" unsets the seed."""
    if name == "seed" and text.strip().lower() == "none":
        return None
    kind = int if name in WHOLE else float
    try:
        return kind(text)
    except ValueError:
        raise UsageError(t("not_whole" if kind is int else "not_number", name=SPOKEN.get(name, name), text=text)) from None


def number_flag(name: str):
    """An argparse type for the sampling setting `name`."""
    def parse(text: str):
        try:
            return parse_number(name, text)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


class _Help(argparse.HelpFormatter):
    """Shows a default only where there is one worth showing."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage dump
        raise UsageError(t("see_help", message=message))


SAMPLING_FLAGS = [  # (setting, metavar, help); defaults come from SamplingSettings
    ("temperature", "T", "0 means greedy"),
    ("top_p", "P", "nucleus sampling mass"),
    ("top_k", "K", "0 turns it off"),
    ("repetition_penalty", "R", "over the prompt and the reply; 1 turns it off"),
    ("max_new_tokens", "N", "longest reply"),
    ("seed", "N", "fix the sampling seed"),
]


def setup_arg_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="llm42",
        description="Chat in your terminal with 42dot LLM-SFT or any Hugging Face causal chat model.",
        epilog="In the chat: Enter sends, Esc then Enter adds a new line, Ctrl+C stops a reply, "
        "Ctrl+D or /exit leaves. Piped stdin is read one message per line.",
        formatter_class=_Help,
    )
    m = p.add_argument_group("model")
    m.add_argument("--model-path", default=None, metavar="ID|DIR|FILE.gguf",
                   help=f"hub id, local folder, or a .gguf file (default: {DEFAULT_MODEL})")
    m.add_argument("--revision", default=None, help="hub branch, tag or commit")
    m.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model to run its own Python code (off: it is arbitrary code)")
    m.add_argument("--allow-pickle", action="store_true",
                   help="allow .bin/.pt pickle checkpoints (off: unpickling can run code; safetensors are safe)")
    m.add_argument("--device", default="auto", metavar="auto|cpu|cuda|cuda:N|mps",
                   help="where to run; auto picks the GPU with most free memory, else MPS, else CPU")
    m.add_argument("--dtype", default="auto", choices=DTYPES,
                   help="weight dtype; auto: bf16/fp16 on GPU, bf16 on CPUs that support it")
    m.add_argument("--quantize", default="none", choices=QUANTIZE,
                   help="int8 or int4 weights for the Linear layers: faster CPU decoding, less memory")
    m.add_argument("--context", type=number_flag("context"), default=None, metavar="N",
                   help="a context window of N tokens instead of the model's (less memory; older turns leave sooner)")
    m.add_argument("--save-quantized", default=None, metavar="DIR",
                   help="with --quantize: save the quantized model, so --model-path DIR starts without quantizing")

    r = p.add_argument_group("remote server (instead of a local model)")
    r.add_argument("--endpoint", default=None, metavar="URL",
                   help="an OpenAI-compatible server's base URL, e.g. http://host:8000/v1 (vLLM, transformers serve, ...)")
    r.add_argument("--model", default=None, metavar="NAME", help="the model name on that server (default: its first)")
    r.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="the environment variable holding the API key (the key itself is never printed)")

    g = p.add_argument_group("generation (42dot's recommended defaults)")
    d = SamplingSettings()
    for name, metavar, text in SAMPLING_FLAGS:
        default = f" (default: {getattr(d, name)})" if getattr(d, name) is not None else ""
        g.add_argument("--" + name.replace("_", "-"), type=number_flag(name), default=None, metavar=metavar,
                       help=text + default)

    c = p.add_argument_group("chat")
    c.add_argument("--system-prompt", default=None, metavar="TEXT", help="replace the model's default system prompt")
    c.add_argument("--prompt", default=None, metavar="TEXT", help="answer one message and exit")
    c.add_argument("--prompt-file", default=None, metavar="PATH|-",
                   help="answer the whole file (or stdin with -) as one message and exit")
    c.add_argument("--no-markdown", action="store_true", help="print replies as plain text")
    c.add_argument("--no-status", action="store_true", help="no context meter after each reply")
    c.add_argument("--verbose", action="store_true", help="add time to first token and tokens/s to the meter")
    c.add_argument("--lang", default=None, choices=("ko", "en"), help="interface language (default: from the locale)")

    h = p.add_argument_group("conversations")
    h.add_argument("--resume", nargs="?", const="", default=None, metavar="ID|PATH",
                   help="continue the most recent conversation, or the one given")
    h.add_argument("--history-dir", default=None, metavar="DIR",
                   help="where conversations are written (default: $LLM42_HISTORY_DIR or the user data folder)")
    h.add_argument("--no-history", action="store_true", help="do not write conversations to disk")
    h.add_argument("--list", action="store_true", help="list the saved conversations (id, when, replies, first message)")
    c.add_argument("--debug", action="store_true",
                   help="show top-5 candidates per token and a JSON summary per reply")
    return p


def parse_args(argv: list[str] | None = None) -> Settings:
    """Parse and validate; raises UsageError before anything is loaded."""
    a = setup_arg_parser().parse_args(argv)
    if not DEVICE_RE.match(a.device):
        raise UsageError(t("bad_device", device=a.device))
    if a.prompt is not None and a.prompt_file is not None:
        raise UsageError(t("prompt_both"))
    if a.endpoint and (a.quantize != "none" or a.save_quantized):
        raise UsageError(t("endpoint_quantize"))
    if a.endpoint and a.model_path is not None:
        raise UsageError(t("endpoint_model_path"))
    if a.endpoint is not None:
        url = urlparse(a.endpoint)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise UsageError(t("endpoint_not_url", url=a.endpoint))
    if a.resume is not None and a.no_history and not a.resume:
        raise UsageError(t("resume_no_history"))
    if a.context is not None and a.context < 64:
        raise UsageError(t("bad_context", n=a.context))
    if a.prompt is not None and not a.prompt.strip():
        raise UsageError(t("prompt_empty"))
    if a.save_quantized and a.quantize == "none":
        raise UsageError(t("save_needs_quantize"))
    out = Path(a.save_quantized).expanduser() if a.save_quantized else None
    if out is not None and (out.is_file() or (out.is_dir() and any(out.iterdir()))):
        raise UsageError(t("save_exists", path=a.save_quantized))
    given = {name: getattr(a, name) for name, _, _ in SAMPLING_FLAGS if getattr(a, name) is not None}
    sampling = SamplingSettings(**given)
    return Settings(
        model_path=a.model_path or DEFAULT_MODEL, model_given=a.model_path is not None, revision=a.revision, trust_remote_code=a.trust_remote_code, allow_pickle=a.allow_pickle,
        device=a.device, dtype=a.dtype, quantize=a.quantize, context=a.context, save_quantized=a.save_quantized,
        endpoint=a.endpoint, model=a.model, api_key_env=a.api_key_env, system_prompt=a.system_prompt,
        sampling=sampling, sampling_flags=set(given), markdown=not a.no_markdown, status=not a.no_status, verbose=a.verbose, lang=a.lang,
        resume=a.resume, history_dir=a.history_dir, history=not a.no_history, debug=a.debug,
        prompt=a.prompt, prompt_file=a.prompt_file, list=a.list,
    )
