"""Settings dataclasses and the command-line parser that fills them."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

DEFAULT_MODEL = "42dot/42dot_LLM-SFT-1.3B"
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZE = ("none", "int8", "int4")


class UsageError(ValueError):
    """A user mistake: shown as one line, exit code 2."""


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
        raise UsageError(f"temperature must be >= 0 (0 means greedy), got {s.temperature}")
    if not 0 < s.top_p <= 1:
        raise UsageError(f"top-p must be in (0, 1], got {s.top_p}")
    if s.top_k < 0:
        raise UsageError(f"top-k must be >= 0 (0 turns it off), got {s.top_k}")
    if not s.repetition_penalty > 0:
        raise UsageError(f"repetition penalty must be > 0 (1 turns it off), got {s.repetition_penalty}")
    if s.max_new_tokens < 1:
        raise UsageError(f"max new tokens must be >= 1, got {s.max_new_tokens}")


@dataclass
class Settings:
    """Everything one run of the CLI needs, as parsed from the command line."""

    model_path: str = DEFAULT_MODEL
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    device: str = "auto"
    dtype: str = "auto"
    quantize: str = "none"
    save_quantized: str | None = None
    endpoint: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    system_prompt: str | None = None
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    markdown: bool = True
    status: bool = True
    verbose: bool = False
    lang: str | None = None
    resume: str | None = None  # "" for the most recent
    history_dir: str | None = None
    history: bool = True
    debug: bool = False
    prompt: str | None = None
    prompt_file: str | None = None


def _number(name: str, kind: type = float):
    """An argparse type that names the flag and the expected kind when the text is not a number."""
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
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
        raise UsageError(f"{message} (see --help)")


def setup_arg_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="llm42",
        description="Chat in your terminal with 42dot LLM-SFT or any Hugging Face causal chat model.",
        epilog="In the chat: Enter sends, Esc then Enter adds a new line, Ctrl+C stops a reply, "
        "Ctrl+D or /exit leaves. Piped stdin is read one message per line.",
        formatter_class=_Help,
    )
    m = p.add_argument_group("model")
    m.add_argument("--model-path", default=DEFAULT_MODEL, metavar="ID|DIR|FILE.gguf",
                   help="hub id, local folder, or a .gguf file")
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
    m.add_argument("--save-quantized", default=None, metavar="DIR",
                   help="with --quantize: save the quantized model, so --model-path DIR starts without quantizing")

    r = p.add_argument_group("remote server (instead of a local model)")
    r.add_argument("--endpoint", default=None, metavar="URL",
                   help="an OpenAI-compatible server's base URL, e.g. http://host:8000/v1 (vLLM, transformers serve, ...)")
    r.add_argument("--model", default=None, metavar="NAME", help="the model name on that server (default: its first)")
    r.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="the environment variable holding the API key (the key itself is never printed)")

    g = p.add_argument_group("generation (42dot's recommended defaults)")
    g.add_argument("--temperature", type=_number("temperature"), default=0.5, metavar="T",
                   help="0 means greedy")
    g.add_argument("--top-p", type=_number("top-p"), default=0.95, metavar="P", help="nucleus sampling mass")
    g.add_argument("--top-k", type=_number("top-k", int), default=20, metavar="K", help="0 turns it off")
    g.add_argument("--repetition-penalty", type=_number("repetition penalty"), default=1.2, metavar="R",
                   help="over the prompt and the reply; 1 turns it off")
    g.add_argument("--max-new-tokens", type=_number("max new tokens", int), default=512, metavar="N",
                   help="longest reply")
    g.add_argument("--seed", type=_number("seed", int), default=None, metavar="N", help="fix the sampling seed")

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
    c.add_argument("--debug", action="store_true",
                   help="show top-5 candidates per token and a JSON summary per reply")
    return p


def parse_args(argv: list[str] | None = None) -> Settings:
    """Parse and validate; raises UsageError before anything is loaded."""
    a = setup_arg_parser().parse_args(argv)
    if not DEVICE_RE.match(a.device):
        raise UsageError(f"unknown device {a.device!r}: use auto, cpu, cuda, cuda:N or mps")
    if a.prompt is not None and a.prompt_file is not None:
        raise UsageError("use either --prompt or --prompt-file, not both")
    if a.endpoint and (a.quantize != "none" or a.save_quantized):
        raise UsageError("--quantize and --save-quantized are for local models, not with --endpoint")
    if a.resume is not None and a.no_history and not a.resume:
        raise UsageError("--resume without an id or path needs the history (drop --no-history)")
    sampling = SamplingSettings(
        temperature=a.temperature, top_p=a.top_p, top_k=a.top_k,
        repetition_penalty=a.repetition_penalty, max_new_tokens=a.max_new_tokens, seed=a.seed,
    )
    return Settings(
        model_path=a.model_path, revision=a.revision, trust_remote_code=a.trust_remote_code, allow_pickle=a.allow_pickle,
        device=a.device, dtype=a.dtype, quantize=a.quantize, save_quantized=a.save_quantized,
        endpoint=a.endpoint, model=a.model, api_key_env=a.api_key_env, system_prompt=a.system_prompt,
        sampling=sampling, markdown=not a.no_markdown, status=not a.no_status, verbose=a.verbose, lang=a.lang,
        resume=a.resume, history_dir=a.history_dir, history=not a.no_history, debug=a.debug,
        prompt=a.prompt, prompt_file=a.prompt_file,
    )
