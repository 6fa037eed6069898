"""Where a model is: a hub id, a local folder or a .gguf file, found without importing anything heavy (a wrong
path is said before torch loads), and the errors loading names."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import Llm42Error
from ..i18n import t


class LoadError(Llm42Error):
    """The model could not be found or loaded; the message says what to do."""


@dataclass
class Source:
    """Where the weights are: a hub id, a local folder, or a folder + GGUF file name."""

    name: str  # what the user typed
    path: str  # hub id or local folder
    gguf_file: str | None = None
    local: bool = False
    revision: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False

    def kwargs(self, local_only: bool = False) -> dict:
        kw = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        if self.gguf_file:
            kw["gguf_file"] = self.gguf_file
        if local_only or self.local:
            kw["local_files_only"] = True
        return kw


PICKLES = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def locate(
    model_path: str, revision: str | None = None, trust_remote_code: bool = False, allow_pickle: bool = False
) -> Source:
    src = _locate(model_path, revision, trust_remote_code)
    src.allow_pickle = allow_pickle
    if src.local and not src.gguf_file and not allow_pickle and not any(Path(src.path).glob("*.safetensors")):
        pickles = sorted(f.name for pattern in PICKLES for f in Path(src.path).glob(pattern))
        if pickles:
            raise LoadError(t("pickle_only", path=model_path, file=pickles[0]))
    return src


def _locate(model_path: str, revision: str | None, trust_remote_code: bool) -> Source:
    p = Path(model_path).expanduser()
    if model_path.lower().endswith(".gguf"):
        if not p.is_file():
            raise LoadError(t("no_gguf", path=model_path))
        return Source(model_path, str(p.parent), p.name, True, revision, trust_remote_code)
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise LoadError(t("no_config", path=model_path))
        return Source(model_path, str(p), None, True, revision, trust_remote_code)
    if p.is_file():  # a GGUF by its content (a renamed download), else a file that is no model
        with open(p, "rb") as f:
            if f.read(4) == b"GGUF":
                return Source(model_path, str(p.parent), p.name, True, revision, trust_remote_code)
        raise LoadError(t("not_a_model_file", path=model_path))
    if p.exists() or model_path.startswith((".", "/", "~")) or model_path.count("/") > 1:
        raise LoadError(t("no_folder", path=model_path))
    return Source(model_path, model_path, None, False, revision, trust_remote_code)


def hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def offline_error(src: Source) -> LoadError:
    return LoadError(t("offline", name=src.name))


WEIGHTS = ("*.safetensors", "*.safetensors.index.json")
ALWAYS = ("*.json", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.jinja")  # config, tokenizer, chat template


def has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(any(folder.glob(p)) for p in WEIGHTS)


def hint(e: BaseException) -> str:
    """What to do about the errors transformers raises most."""
    text = str(e)
    if "custom code" in text or "trust_remote_code" in text:
        return t("hint_remote_code")
    if "does not recognize this architecture" in text:
        return t("hint_arch")
    return ""


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
