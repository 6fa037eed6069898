"""llm42's own tokenizer for a folder with a tokenizer.json: the `tokenizers` library (as transformers' fast
tokenizers use it) and the chat template rendered by jinja2 in a sandbox (as transformers renders it), without
importing transformers; the few methods llm42 calls, with transformers' names and results."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
SPECIAL = ("bos_token", "eos_token", "unk_token", "pad_token")


class Tokenizer:
    def __init__(self, folder: str | Path, config: dict):
        """`config`: the folder's tokenizer_config.json."""
        from tokenizers import Tokenizer as Backend

        self.folder = Path(folder)
        self.backend = Backend.from_file(str(self.folder / "tokenizer.json"))
        special = {**_json(self.folder / "special_tokens_map.json"), **config}
        self.special = {k: _text(special.get(k)) for k in SPECIAL if _text(special.get(k))}
        template = self.folder / "chat_template.jinja"
        self.chat_template = template.read_text(encoding="utf-8") if template.is_file() else config.get("chat_template")
        self._compiled: tuple[str, object] | None = None

    @classmethod
    def read(cls, folder: str | Path) -> Tokenizer | None:
        """The folder's tokenizer, or None where transformers must load it (no tokenizer.json, custom code)."""
        folder = Path(folder)
        config = _json(folder / "tokenizer_config.json")
        if not (folder / "tokenizer.json").is_file() or config.get("auto_map") or config.get("tokenizer_file"):
            return None
        if not isinstance(config.get("chat_template", ""), str):  # a list of named templates
            return None
        try:
            return cls(folder, config)
        except Exception:  # a tokenizer.json this tokenizers version cannot read
            return None

    @property
    def eos_token_id(self) -> int | None:
        return self.token_id(self.special.get("eos_token"))

    def token_id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False, clean_up_tokenization_spaces=False) -> str:
        return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def convert_ids_to_tokens(self, token: int) -> str | None:
        return self.backend.id_to_token(token)

    def apply_chat_template(self, messages: list[dict], tokenize: bool = False, add_generation_prompt=False) -> str:
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template")
        text = self._template().render(messages=messages, add_generation_prompt=add_generation_prompt, **self.special)
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def _template(self):
        if self._compiled is None or self._compiled[0] != self.chat_template:
            self._compiled = (self.chat_template, _compile(self.chat_template))
        return self._compiled[1]

    def save_pretrained(self, folder: str | Path) -> None:
        for name in FILES:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, Path(folder) / name)
        if self.chat_template and not (self.folder / "chat_template.jinja").is_file():
            (Path(folder) / "chat_template.jinja").write_text(self.chat_template, encoding="utf-8")


def _compile(source: str):
    """transformers' environment for chat templates: sandboxed, trimmed blocks, loop controls, its helpers."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _text(token) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or {"content": ...}."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) and token else None
