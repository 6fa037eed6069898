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


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level alphabet (each byte shown as a printable character), inverted."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTES = _byte_decoder()


def piece(tokenizer, token: int) -> str:
    """One token as text for --debug; a piece of a character (one byte of an emoji) shows as \\xNN, not U+FFFD."""
    text = tokenizer.decode([token], skip_special_tokens=False, clean_up_tokenization_spaces=False)
    if REPLACEMENT not in text:
        return text
    raw = tokenizer.convert_ids_to_tokens(token) or ""
    if raw and all(c in _BYTES for c in raw):  # byte-level BPE (42dot, GPT-2, SmolLM2)
        return bytes(_BYTES[c] for c in raw).decode("utf-8", errors="backslashreplace")
    return raw  # SentencePiece byte fallback already reads <0xF0>
