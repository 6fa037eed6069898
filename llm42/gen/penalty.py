"""What the repetition penalty covers: the tokens whose logits it lowers before the next draw.

42dot's script (transformers' processor) penalizes every token of the prompt and the reply. That keeps a free reply
from looping, and pushes a reply off every word it is asked to quote or fix ("Fix the typos" on SmolLM2 ran the
words together: "shinebeneedfulldaylightbeautifulnight"), so drafts copied from the conversation are rejected too.
By default llm42 penalizes the reply's last 64 tokens (llama.cpp and ollama penalize a window of 64 too, theirs
reaching into the prompt), less the tokens that go on quoting the prompt where the reply has not quoted that part
yet: quoting a stretch of the conversation once is not repetition, a reply that loops over it again is penalized
as any other loop. Everything here follows from the tokens before, so plain decoding and a verify pass (which
feeds the same tokens in the same order) penalize alike."""

from __future__ import annotations

from collections import Counter, defaultdict, deque

import torch

QUOTE = 3  # tokens of context that must match the prompt for the next token to count as quoting it


class Quotes:
    """Where the text goes on as the prompt did: after the last QUOTE tokens, the tokens that followed the same
    QUOTE tokens in the prompt, at places not quoted yet in this reply."""

    def __init__(self, prompt: list[int]):
        self.prompt = list(prompt)
        self.after: dict[tuple[int, ...], list[int]] = defaultdict(list)  # n-gram -> positions that followed it
        for j in range(len(self.prompt) - QUOTE):
            self.after[tuple(self.prompt[j : j + QUOTE])].append(j + QUOTE)
        self.tail = self.prompt[-QUOTE:]
        self.quoted: set[int] = set()  # prompt positions this reply has quoted

    def _places(self) -> list[int]:
        return [p for p in self.after.get(tuple(self.tail), ()) if p not in self.quoted]

    def next(self) -> set[int]:
        """The tokens that would go on quoting."""
        return {self.prompt[p] for p in self._places()}

    def add(self, token: int) -> None:
        """The text goes on with `token`: the first place it quotes is quoted now."""
        for p in self._places():
            if self.prompt[p] == token:
                self.quoted.add(p)
                break
        self.tail = [*self.tail[1:], token] if len(self.tail) == QUOTE else [*self.tail, token]


class Scope:
    """The distinct tokens the penalty covers now. `last_n` > 0: the reply's last `last_n` tokens less those that go
    on quoting (above); 0: none; -1: every token of the prompt and the reply, as transformers and 42dot's script."""

    def __init__(self, vocab: int, device: torch.device | str, prompt: list[int] = (), last_n: int = 64):
        self.vocab, self.device, self.last_n = vocab, device, last_n
        self.window: deque[int] = deque()
        self.counts: Counter[int] = Counter()
        self.quotes = Quotes(prompt) if last_n > 0 else None
        if last_n < 0:  # everything: a buffer of the distinct ids, grown in place
            self.ids = torch.empty(vocab, dtype=torch.long, device=device)
            self.known: set[int] = set()
            self.n = 0
            for i in prompt:
                self.add(i)

    def add(self, token: int) -> None:
        """The reply goes on with `token`."""
        if self.last_n < 0:
            if token not in self.known and token < self.vocab:
                self.known.add(token)
                self.ids[self.n] = token
                self.n += 1
            return
        if self.last_n == 0:
            return
        self.quotes.add(token)
        self.window.append(token)
        self.counts[token] += 1
        if len(self.window) > self.last_n:
            old = self.window.popleft()
            self.counts[old] -= 1
            if not self.counts[old]:
                del self.counts[old]

    def tokens(self) -> list[int]:
        """The penalized tokens, as a list (for tests and transformers' processor)."""
        if self.last_n < 0:
            return self.ids[: self.n].tolist()
        if self.last_n == 0:
            return []
        quoting = self.quotes.next()
        return [t for t in self.counts if t not in quoting and t < self.vocab]

    def tensor(self) -> torch.Tensor:
        if self.last_n < 0:
            return self.ids[: self.n]
        return torch.tensor(self.tokens(), dtype=torch.long, device=self.device)
