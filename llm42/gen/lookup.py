"""Prompt lookup: draft the next tokens by finding the conversation's last few tokens earlier in it and proposing
what followed them there. No draft model: replies that quote, fix or summarize what is already in the
conversation repeat long runs of it, and the model then verifies a whole run in one pass (speculate.py)."""

from __future__ import annotations

from collections.abc import Iterable


class Lookup:
    """The tokens so far (system, turns, files, the reply), indexed by their n-grams (n = shortest..longest)."""

    def __init__(self, tokens: Iterable[int] = (), stop_ids: Iterable[int] = (), longest: int = 3, shortest: int = 2):
        self.tokens: list[int] = []
        self.stop_ids = frozenset(stop_ids)
        self.sizes = range(longest, shortest - 1, -1)
        self.index: dict[tuple[int, ...], int] = {}  # n-gram -> where what followed its latest earlier match starts
        self.follow: int | None = None  # where the text goes on copying from, while it keeps matching a draft's source
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
            self.follow = self.follow + 1 if self.tokens[self.follow] == token else None
        self.tokens.append(token)

    def draft(self, k: int) -> list[int]:
        """Up to k tokens: what comes next where the text has been copying from since the last draft (it matched
        every token since), else what followed the longest matching n-gram (its latest occurrence); never across
        a stop token (the end of a turn); [] when nothing matches."""
        if k <= 0:
            return []
        found = (self.index.get(tuple(self.tokens[-n:])) for n in self.sizes if len(self.tokens) >= n)
        for start in (self.follow, *found):
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
