"""Prompt lookup: draft the next tokens by finding the conversation's last few tokens earlier in it and proposing
what followed them there. No draft model: replies that quote, fix or summarize what is already in the
conversation repeat long runs of it, and the model then verifies a whole run in one pass (speculate.py).

Where a reply that copies a text changes a word of it (a typo fixed), its last few tokens are found nowhere, and the
n-grams find the copy again only a few tokens later. So the place where the copy broke off is kept, and the reply's
last token found a little past it picks the copy up again at once (replayed on the shipped grounded set at the
default flags, `python -m llm42.bench --replay`: 1.51x -> 1.57x at the 42dot shape's verify costs on a Zen 5, 1.72x
-> 1.81x if verifies were free; open chat unchanged)."""

from __future__ import annotations

from collections.abc import Iterable

RESUME_WITHIN = 16  # tokens past where a copy broke off that the reply's last token is looked for


class Lookup:
    """The tokens so far (system, turns, files, the reply), indexed by their n-grams (n = shortest..longest)."""

    def __init__(self, tokens: Iterable[int] = (), stop_ids: Iterable[int] = (), longest: int = 3, shortest: int = 2):
        self.tokens: list[int] = []
        self.stop_ids = frozenset(stop_ids)
        self.sizes = range(longest, shortest - 1, -1)
        self.index: dict[tuple[int, ...], int] = {}  # n-gram -> where what followed its latest earlier match starts
        self.follow: int | None = None  # where the text goes on copying from, while it keeps matching a draft's source
        self.left: int | None = None  # where the copied text stood when the reply last left it (or goes on there)
        for token in tokens:
            self.add(token)

    def add(self, token: int) -> None:
        """Append a token. The n-grams ending just before it are indexed now, so the current end of the text is
        never found as a match of itself."""
        end = len(self.tokens)
        for n in self.sizes:
            if end >= n:
                self.index[tuple(self.tokens[end - n :])] = end
        if self.follow is not None:
            copied = self.tokens[self.follow] == token
            self.left = self.follow + copied
            self.follow = self.left if copied else None
        elif self.left is not None and self.left < end and self.tokens[self.left] == token:
            self.left += 1  # the reply went back to the copied text by itself
        self.tokens.append(token)

    def draft(self, k: int) -> list[int]:
        """Up to k tokens: what comes next where the text has been copying from since the last draft (it matched
        every token since), else what followed the longest matching n-gram (its latest occurrence); never across
        a stop token (the end of a turn); else, where the reply left a text it was copying, what follows its last
        token a little past that place; [] when nothing matches."""
        if k <= 0:
            return []
        found = [self.index.get(tuple(self.tokens[-n:])) for n in self.sizes if len(self.tokens) >= n]
        for start in (self.follow, *found, self._resumed()):
            if start is None:
                continue
            out = []
            for token in self.tokens[start : start + k]:
                if token in self.stop_ids:
                    break
                out.append(token)
            if out:
                self.follow = start
                return out
        return []

    def _resumed(self) -> int | None:
        """Where to go on copying after the reply changed a few tokens of a text: after its last token, looked for
        within RESUME_WITHIN tokens from where it left the text (None: not found, or no text left)."""
        if self.left is None:
            return None
        last = self.tokens[-1]
        for at in range(self.left, min(self.left + RESUME_WITHIN, len(self.tokens) - 1)):
            if self.tokens[at] == last:
                return at + 1
        return None
