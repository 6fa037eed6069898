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
