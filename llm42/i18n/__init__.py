"""What llm42 says, in English and Korean, from one table; `--lang` or the locale picks the language once."""

from __future__ import annotations

import os
import re
import string

from .chat import CHAT
from .start import START
from .store import STORE

# key: (English, Korean). Both take the same {placeholders}; a test checks it.
MESSAGES: dict[str, tuple[str, str]] = {**CHAT, **START, **STORE}
LANGUAGES = ("en", "ko")
_lang = "en"


def from_locale() -> str:
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "ko" if value.lower().startswith("ko") else "en"
    return "en"


def set_language(flag: str | None = None) -> str:
    """--lang if given, else the locale's; every message from now on is in it."""
    global _lang
    _lang = flag if flag in LANGUAGES else from_locale()
    return _lang


def language() -> str:
    return _lang


PLURAL = re.compile(r"\(([^()|]+)\|([^()|]+)\)")  # English "(turn|turns)": one or the other by {n}


def t(key: str, **kw) -> str:
    """The message `key` in the current language; English "(one|many)" forms agree with the count `n`
    (Korean counts with counters: 메시지 {n}개)."""
    text = MESSAGES[key][LANGUAGES.index(_lang)].format(**kw)
    if "n" in kw:
        text = PLURAL.sub(lambda m: m.group(1) if kw["n"] == 1 else m.group(2), text)
    return text


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


set_language()
