"""Shared by the eval commands: JSON Lines files that are appended to and resumed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from llm42.chat.transcript import append_line


def read_jsonl(path: Path) -> list[dict]:
    """Every complete record; a torn last line (an interrupted run) is ignored."""
    if not Path(path).is_file():
        return []
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def append_jsonl(path: Path, record: dict) -> None:
    append_line(Path(path), json.dumps(record, ensure_ascii=False))


def read_bench(path: Path) -> list[dict]:
    """The prompt set: columns id, question, category, task (42dot's published schema)."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"error: cannot read the prompt set {path}: {getattr(e, 'strerror', None) or e}") from None
    missing = {"id", "question", "category", "task"} - set(rows[0] if rows else {})
    if missing:
        raise SystemExit(f"error: {path} lacks the column(s) {', '.join(sorted(missing))}")
    return rows
