"""The conversation as data: typed messages, a dialog, and its turns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum


class Role(str, Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


@dataclass
class Message:
    role: Role
    content: str
    interrupted: bool = False  # an assistant reply cut short by Ctrl+C
    ids: list[int] | None = None  # a local model's reply: the tokens it generated (the next prompt feeds these)

    def as_dict(self) -> dict:
        return {"role": self.role.value, "content": self.content}


@dataclass
class Dialog:
    """A system prompt (None: the template's default) and alternating user/assistant messages."""

    system: str | None = None
    messages: list[Message] = field(default_factory=list)
    changes: list[tuple[int, str | None]] = field(default_factory=list)  # (message count, system) from /system
    left_out: int = 0  # the oldest turns the last reply's prompt left out: they stay out while they stay as they are

    def cut(self, keep: int) -> None:
        """Keep the first `keep` messages (/undo, /edit, /reset, a message taken back). Turns left out stay out
        while all of them are kept; else the next prompt is fitted afresh."""
        if sum(len(turn) for turn in self.turns()[: self.left_out]) > keep:
            self.left_out = 0
        del self.messages[keep:]

    def set_system(self, text: str | None) -> None:
        """Change the system prompt from here on (the template renders the newest; an export shows where)."""
        if not self.changes:
            self.changes.append((0, self.system))
        self.changes.append((len(self.messages), text))
        self.system = text

    def timeline(self) -> Iterator[tuple[str, object]]:
        """("system", text) for the first system prompt, then ("message", Message) in order, with
        ("system", text) where /system changed it."""
        changes = self.changes or [(0, self.system)]
        yield "system", changes[0][1]
        later = changes[1:]
        for i, m in enumerate([*self.messages, None]):
            while later and later[0][0] <= i:
                yield "system", later.pop(0)[1]
            if m is not None:
                yield "message", m

    def add(self, role: Role, content: str, interrupted: bool = False, ids: list[int] | None = None) -> None:
        self.messages.append(Message(role, content, interrupted, ids))

    def turns(self) -> list[list[Message]]:
        """Group messages into turns: each starts at a user message."""
        out: list[list[Message]] = []
        for m in self.messages:
            if m.role is Role.USER or not out:
                out.append([])
            out[-1].append(m)
        return out

    def render(self, drop_turns: int = 0, ids: bool = False) -> list[dict]:
        """Chat-template messages with the oldest `drop_turns` turns left out; `ids`: a reply's generated tokens
        too, where known (template.ChatFormat.encode feeds them)."""
        msgs = [{"role": "system", "content": self.system}] if self.system is not None else []
        for turn in self.turns()[drop_turns:]:
            msgs.extend({**m.as_dict(), "ids": m.ids} if ids and m.ids else m.as_dict() for m in turn)
        return msgs
