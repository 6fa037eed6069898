"""Settings dataclasses and the command-line parser that fills them."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field, fields

from .errors import UsageError
from .i18n import t

DEFAULT_MODEL = "42dot/42dot_LLM-SFT-1.3B"
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZE = ("none", "int8", "int4")


def opt(default, help: str, metavar: str | None = None, **argparse_kw):
    """A setting with its command-line flag: --name (or `flag=`), its help and argparse's other keywords."""
    return field(default=default, metadata=dict(help=help, metavar=metavar, **argparse_kw))


def switch(help: str, on: bool = False):
    """An on/off setting: --name turns it on, or --no-name turns it off where it is on by default."""
    return field(default=on, metadata=dict(help=help, switch=True))


@dataclass
class SamplingSettings:
    """How one reply is sampled; 42dot's recommended defaults."""

    temperature: float = opt(0.5, "0 means greedy", "T")
    top_p: float = opt(0.95, "nucleus sampling mass", "P")
    top_k: int = opt(20, "0 turns it off", "K")
    repetition_penalty: float = opt(1.2, "1 turns it off", "R")
    repeat_last_n: int = opt(
        64,
        "the penalty covers the reply's last N tokens, less those that quote the conversation; -1: the prompt and "
        "the whole reply (42dot's script)",
        "N",
    )
    max_new_tokens: int = opt(512, "longest reply", "N")
    seed: int | None = opt(None, "fix the sampling seed", "N")

    def __post_init__(self) -> None:
        check_sampling(self)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def reply_fits(max_new_tokens: int, window: int | None) -> bool:
    """The one rule between the longest reply and the context window: a reply must leave room for a prompt."""
    return not window or max_new_tokens < window


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
    if s.repeat_last_n < -1:
        raise UsageError(t("bad_last_n", v=s.repeat_last_n))
    if s.max_new_tokens < 1:
        raise UsageError(t("bad_max_new", v=s.max_new_tokens))


@dataclass
class ModelSettings:
    """model"""

    path: str | None = opt(
        None,
        f"hub id, local folder, or a .gguf file (default: {DEFAULT_MODEL})",
        "ID|DIR|FILE.gguf",
        flag="--model-path",
    )
    revision: str | None = opt(None, "hub branch, tag or commit")
    trust_remote_code: bool = switch("allow a model to run its own Python code (off: it is arbitrary code)")
    allow_pickle: bool = switch(
        "allow .bin/.pt pickle checkpoints (off: unpickling can run code; safetensors are safe)"
    )
    device: str = opt(
        "auto", "where to run; auto picks the GPU with most free memory, else MPS, else CPU", "auto|cpu|cuda|cuda:N|mps"
    )
    dtype: str = opt("auto", "weight dtype; auto: bf16/fp16 on GPU, bf16 on CPUs that support it", choices=DTYPES)
    quantize: str = opt(
        "none", "int8 or int4 weights for the Linear layers: faster CPU decoding, less memory", choices=QUANTIZE
    )
    context: int | None = opt(
        None,
        "a context window of N tokens instead of the model's (less memory; older turns leave sooner)",
        "N",
        number=True,
    )
    speculate: str = opt(
        "auto",
        "draft tokens from the conversation and verify several in one pass where that measures faster",
        choices=("auto", "off"),
    )
    kv_cache_gb: float | None = opt(
        None,
        "keep up to GB of chats' KV cache on disk, so a resumed chat or a repeated prompt starts at once "
        "(default: $LLM42_KV_CACHE_GB or 4; 0 keeps none)",
        "GB",
        number=True,
    )
    save_quantized: str | None = opt(
        None, "with --quantize: save the quantized model, so --model-path DIR starts without quantizing", "DIR"
    )

    @property
    def name(self) -> str:
        return self.path or DEFAULT_MODEL

    @property
    def given(self) -> bool:
        """--model-path on the command line (else --resume takes the recorded model)."""
        return self.path is not None


@dataclass
class RemoteSettings:
    """remote server (instead of a local model)"""

    endpoint: str | None = opt(
        None, "an OpenAI-compatible server's base URL, e.g. http://host:8000/v1 (vLLM, transformers serve, ...)", "URL"
    )
    model: str | None = opt(None, "the model name on that server (default: its first)", "NAME")
    api_key_env: str = opt(
        "OPENAI_API_KEY", "the environment variable holding the API key (the key itself is never printed)", "VAR"
    )


@dataclass
class ChatSettings:
    """chat"""

    system_prompt: str | None = opt(None, "replace the model's default system prompt", "TEXT")
    prompt: str | None = opt(None, "answer one message and exit", "TEXT")
    prompt_file: str | None = opt(None, "answer the whole file (or stdin with -) as one message and exit", "PATH|-")
    file: list[str] | None = opt(
        None,
        "a text file to put in front of the first message (with --prompt: of that one); repeatable",
        "PATH",
        action="append",
    )


@dataclass
class OutputSettings:
    """output"""

    markdown: bool = switch("print replies as plain text", on=True)
    status: bool = switch("no context meter after each reply", on=True)
    verbose: bool = switch("add time to first token and tokens/s to the meter")
    lang: str | None = opt(None, "interface language (default: from the locale)", choices=("ko", "en"))
    debug: bool = switch("show top-5 candidates per token and a JSON summary per reply")


@dataclass
class ConversationSettings:
    """conversations"""

    resume: str | None = opt(
        None, "continue the most recent conversation, or the one given", "ID|PATH", nargs="?", const=""
    )  # "" for the most recent
    history_dir: str | None = opt(
        None, "where conversations are written (default: $LLM42_HISTORY_DIR or the user data folder)", "DIR"
    )
    history: bool = switch("do not write conversations to disk", on=True)
    list: bool = switch("list the saved conversations (id, when, replies, KV kept on disk, first message)")


@dataclass
class Settings:
    """Everything one run of the CLI needs, as parsed from the command line, in the groups --help shows."""

    model: ModelSettings = field(default_factory=ModelSettings)
    remote: RemoteSettings = field(default_factory=RemoteSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    conversations: ConversationSettings = field(default_factory=ConversationSettings)
    sampling_flags: set[str] = field(default_factory=set)  # the sampling settings given as flags


GROUPS = {
    "model": ModelSettings,
    "remote": RemoteSettings,
    "sampling": SamplingSettings,
    "chat": ChatSettings,
    "output": OutputSettings,
    "conversations": ConversationSettings,
}  # --help's order
SAMPLING_TITLE = (
    "generation (defaults: the values the model's generation_config.json sets, else 42dot's recommendation, shown)"
)


SAMPLING_NAMES = tuple(f.name for f in fields(SamplingSettings))
WHOLE = ("top_k", "repeat_last_n", "max_new_tokens", "seed", "context")  # the sampling settings that are whole numbers
SPOKEN = {
    "top_p": "top-p",
    "top_k": "top-k",
    "repetition_penalty": "repetition penalty",
    "repeat_last_n": "repeat last n",
    "max_new_tokens": "max new tokens",
}  # as messages name them


def parse_number(name: str, text: str):
    """`text` as the sampling setting `name` needs it (int or float); UsageError naming both when it is not.
    Flags and /set both parse through here. "none" unsets the seed."""
    if name == "seed" and text.strip().lower() == "none":
        return None
    kind = int if name in WHOLE else float
    try:
        return kind(text)
    except ValueError:
        raise UsageError(
            t("not_whole" if kind is int else "not_number", name=SPOKEN.get(name, name), text=text)
        ) from None


def number_flag(name: str):
    """An argparse type for the sampling setting `name`."""

    def parse(text: str):
        try:
            return parse_number(name, text)
        except UsageError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse
