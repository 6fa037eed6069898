"""A text file brought into the chat (/read, --file): read in the encodings a Korean user meets (UTF-8, UTF-8 with
a BOM, CP949/EUC-KR), refused in one line when it is not text, not there, or too big; put in front of the
next message with its name."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import UsageError
from ..i18n import t

MOST_BYTES = 8 * 1024 * 1024  # far more than any context window takes; the token count decides below that
ENCODINGS = ("utf-8", "cp949")  # cp949 is EUC-KR and the rest of Windows' Korean code page


class FileError(UsageError):
    """A file that cannot go into the chat; the message names it and why."""


def read_text(path: str) -> tuple[str, str]:
    """(the file's name, its text); FileError for a missing, unreadable, binary or huge file, or a folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise FileError(t("read_folder", path=path))
    try:
        size = p.stat().st_size
        if size > MOST_BYTES:
            raise FileError(t("read_huge", path=path, mb=size / 1e6))
        data = p.read_bytes()
    except OSError as e:
        raise FileError(t("read_unreadable", path=path, why=e.strerror or e)) from None
    if b"\0" in data[:65536]:
        raise FileError(t("read_binary", path=path))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for encoding in ENCODINGS:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise FileError(t("read_binary", path=path))
    if not text.strip():
        raise FileError(t("read_empty", path=path))
    return p.name, text.replace("\r\n", "\n")


def attach(files: list[tuple[str, str]], message: str) -> str:
    """The message as sent: each file's name and text in a code fence longer than any inside it, then the
    message."""
    parts = []
    for name, text in files:
        fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`{3,}", text)), default=0))
        parts.append(f"{name}:\n{fence}\n{text.rstrip()}\n{fence}")
    return "\n\n".join([*parts, message])


_ATTACHED = re.compile(r"([^\n`]+):\n(`{3,})\n.*?\n\2(?:\n\n|\Z)", re.S)


def typed(message: str) -> tuple[str, list[str]]:
    """`attach` undone: (what the user typed, the names of the files that went with it)."""
    names = []
    while m := _ATTACHED.match(message):
        names.append(m.group(1))
        message = message[m.end() :]
    return message, names
