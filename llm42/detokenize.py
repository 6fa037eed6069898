"""Incremental detokenization: decode only new tokens, hold back incomplete UTF-8."""

from __future__ import annotations

REPLACEMENT = "\ufffd"


class StreamDecoder:
    """Turns token ids into text deltas whose concatenation equals the full decode.

    Each step decodes a short window (the previous token plus the pending ones), never the
    whole reply. While the window ends in U+FFFD, a multi-byte character (a Hangul syllable
    is 3 bytes, often split over byte-level tokens) is incomplete, so the text is held."""

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip = skip_special_tokens
        self.ids: list[int] = []
        self.prefix = 0  # start of the decode window
        self.read = 0  # ids before this are already shown

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip, clean_up_tokenization_spaces=False)

    def step(self, token: int) -> str:
        self.ids.append(token)
        shown = self._decode(self.ids[self.prefix : self.read])
        text = self._decode(self.ids[self.prefix :])
        if len(text) > len(shown) and not text.endswith(REPLACEMENT):
            self.prefix, self.read = self.read, len(self.ids)
            return text[len(shown) :]
        return ""

    def flush(self) -> str:
        """The held tail at the end of a reply (invalid bytes show as U+FFFD, as in the full decode)."""
        shown = self._decode(self.ids[self.prefix : self.read])
        text = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return text[len(shown) :]
