"""The contract between the chat and what answers it (a local model or a server): a stream of typed records.

Nothing here imports torch or transformers, so a remote chat never loads the local stack."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

from .conversation import Dialog
from .settings import SamplingSettings


class Finish(str, Enum):
    """Why a reply ended: what a stream's last record says (STOP, LENGTH, LOST), or INTERRUPTED, which the chat
    records for a reply stopped by the user. Strings as transcripts and --debug write them."""

    STOP = "stop"  # the model's end (an end token or a stop string)
    LENGTH = "length"  # the longest reply allowed
    LOST = "connection lost"  # a server that went away mid-reply
    INTERRUPTED = "interrupted"  # Ctrl+C

    def __str__(self) -> str:
        return self.value


@dataclass
class Response:
    """One streamed piece of a reply with the running figures so far; the last one has `finish_reason`."""

    text: str  # new text, safe to show: whole characters, never part of a stop string
    token_text: str | None = None  # --debug: the token as the model wrote it (a byte piece shows escaped)
    top: list[tuple[str, float]] | None = field(default=None, repr=False)  # --debug: the top-5 candidates
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens served from the cache of earlier turns
    restored_tokens: int = 0  # of those, read from the KV kept on disk by an earlier run (or an earlier chat)
    dropped_turns: int = 0  # oldest turns left out to fit the window
    generation_tokens: int = 0
    ttft: float = 0.0  # seconds from the request to the first token
    decode_tps: float = 0.0  # tokens/s after the first token
    peak_memory_gb: float = 0.0
    drafted: int = 0  # tokens drafted from the conversation and verified (speculation)
    accepted: int = 0  # of those, the ones the model accepted
    finish_reason: Finish | None = None  # on the last record only
    error: str | None = None  # why the connection was lost
    ids: list[int] | None = field(default=None, repr=False)  # on a local model's last record: the reply's tokens


class Backend(Protocol):
    """What the chat talks to."""

    name: str  # the model, as shown and recorded
    device: str  # "cpu", "cuda:0", "mps" or "remote"
    window: int  # the context window in tokens; 0 when a server fits the context itself
    sampling_defaults: dict  # the sampling values the model's own files set (generation_config.json); {}: none
    endpoint: str | None  # a server's URL (recorded, so --resume finds it again); None for a local model
    speculate: bool  # drafting from the conversation is on (only where llm42's own decode step runs)

    def set_speculate(self, on: bool) -> bool:
        """/set speculate: turn drafting on or off; whether it is on now (always off where it cannot run)."""
        ...

    def count_tokens(self, text: str) -> int | None:
        """The tokens `text` takes in the prompt; None where the tokenizer is the server's, unseen from here."""
        ...

    def stored(self) -> tuple[int, int] | None:
        """(tokens, bytes) of this chat's KV kept on disk for the next run; None where none is kept."""
        ...

    def keep_for(self, chat: Path | None) -> None:
        """The conversation file this chat is recorded in (None: not recorded): the KV kept on disk names it, so
        that --list shows what a chat keeps and a deleted conversation's KV goes too."""
        ...

    def ready(self, dialog: Dialog) -> None:
        """The chat goes on from `dialog` (--resume, /load): a local model reads the KV kept on disk for it now,
        beside the chat (while the person reads and types), so that the next reply prefills only the new message."""
        ...

    def reply(self, dialog: Dialog, s: SamplingSettings, debug: bool = False) -> Iterator[Response]:
        """Stream the reply to the dialog's last user message."""
        ...

    def default_system(self) -> str | None:
        """The system prompt the model gets when the dialog sets none, where it is known (None for a server)."""
        ...


class Collector:
    """Joins a reply stream's text and keeps its latest figures, also when the stream is cut short."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.last: Response | None = None

    def take(self, stream: Iterator[Response]) -> Response | None:
        """Consume `stream`; the final record (None if it never came)."""
        for r in stream:
            self.add(r)
        return self.final

    def add(self, r: Response) -> None:
        self.last = r
        if r.text:
            self.parts.append(r.text)

    @property
    def final(self) -> Response | None:
        return self.last if self.last is not None and self.last.finish_reason else None

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()

    def stopped(self, reason: Finish = Finish.INTERRUPTED) -> Response | None:
        """The figures of a reply cut short, as far as they got."""
        return None if self.last is None else replace(self.last, text="", top=None, finish_reason=reason)


def collect(stream: Iterator[Response]) -> tuple[str, Response | None]:
    """The whole reply and its final record, without a UI (scripts and eval)."""
    c = Collector()
    final = c.take(stream)
    return c.text, final
