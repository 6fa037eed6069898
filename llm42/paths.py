"""The user's folders llm42 writes to: conversations (data) and what can be rebuilt (cache)."""

from __future__ import annotations

import os
from pathlib import Path


def history_dir(override: str | None = None) -> Path:
    """--history-dir, else $LLM42_HISTORY_DIR, else the platform's user data folder."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("LLM42_HISTORY_DIR"):
        return Path(os.environ["LLM42_HISTORY_DIR"]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("llm42", appauthor=False)) / "conversations"


def cache_dir() -> Path:
    """$LLM42_CACHE, else the platform's user cache folder (~/.cache/llm42 on Linux): measured kernel
    choices, converted GGUF models, the benchmark's models."""
    if os.environ.get("LLM42_CACHE"):
        return Path(os.environ["LLM42_CACHE"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("llm42", appauthor=False))


def cache_problem() -> str | None:
    """Why the cache folder cannot be written (then llm42 measures, builds and converts again at every start, in
    memory or in a temporary folder), or None."""
    import tempfile

    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return None


MODELS = ("gguf", "quantized")  # the cache's model copies: converted GGUF files, quantized checkpoints
MODELS_GB = 20.0  # their default bound ($LLM42_MODEL_CACHE_GB; 0 keeps none): a 1.3B model is 2.7 GB in bf16


def models_limit() -> int:
    """Bytes the cached model copies may take together."""
    try:
        return int(float(os.environ.get("LLM42_MODEL_CACHE_GB", MODELS_GB)) * 2**30)
    except ValueError:
        return int(MODELS_GB * 2**30)


def used(folder: Path) -> None:
    """Mark something cached (a model copy, a stored KV file) as used now: the least recently used go first when
    the cache is full."""
    try:
        os.utime(folder)
    except OSError:
        pass


def trim_models(keep: Path | None = None) -> list[Path]:
    """Remove the least recently used model copies until they fit `models_limit()` (`keep`, just made, stays while
    it alone fits); the folders removed."""
    import shutil

    copies = []
    for kind in MODELS:
        for folder in (cache_dir() / kind).glob("*"):
            leaves = [p for p in folder.glob("*") if p.is_dir()] if kind == "gguf" else [folder]  # gguf: per dtype
            for leaf in leaves:
                if leaf.is_dir() and not leaf.name.endswith(".partial"):
                    size = sum(f.stat().st_size for f in leaf.rglob("*") if f.is_file())
                    copies.append((leaf.stat().st_mtime, size, leaf))
    total, limit, gone = sum(size for _, size, _ in copies), models_limit(), []
    for _, size, leaf in sorted(copies, key=lambda c: (c[2] == keep, c[0])):  # oldest first, the new one last
        if total <= limit:
            break
        shutil.rmtree(leaf, ignore_errors=True)
        if leaf.parent.parent.name == "gguf" and not any(leaf.parent.iterdir()):
            leaf.parent.rmdir()
        total -= size
        gone.append(leaf)
    return gone


KV_MAGIC = b"LLM42KV\x01"  # a stored KV file begins so (gen/kvstore.py), then its header's length and the header


def kv_header_bytes(header: dict) -> bytes:
    """A stored KV file's beginning: the magic, the header's length, the header (JSON)."""
    import json

    data = json.dumps(header).encode()
    return KV_MAGIC + len(data).to_bytes(4, "little") + data


def read_kv_header(f) -> tuple[dict, int]:
    """From a stored KV file open at its start: its header and the byte after it; ({}, 0) where the file is not
    one. A header that is not JSON raises ValueError."""
    import json

    head = f.read(12)
    if len(head) < 12 or head[:8] != KV_MAGIC:
        return {}, 0
    size = int.from_bytes(head[8:12], "little")
    header = json.loads(f.read(size))
    return (header, 12 + size) if isinstance(header, dict) else ({}, 0)


def kv_header(path: Path) -> dict:
    """A stored KV file's header (its key, layout, and the conversation file it was kept for); {} where the file
    is not one, or cannot be read."""
    try:
        with open(path, "rb") as f:
            return read_kv_header(f)[0]
    except (OSError, ValueError):
        return {}


def kv_kept() -> dict[str, int]:
    """Bytes of stored KV per conversation file (its resolved path) they were kept for, from the cache folder."""
    out: dict[str, int] = {}
    for path in (cache_dir() / "kv").glob("*/*.kv"):
        chat = kv_header(path).get("chat")
        if isinstance(chat, str):
            try:
                out[chat] = out.get(chat, 0) + path.stat().st_size
            except OSError:
                continue
    return out
