"""Streaming detokenization equals the full decode and never shows half a character."""

import pytest

from llm42.gen.detokenize import StreamDecoder

TEXTS = [
    "한국의 수도는 서울입니다. 서울은 한강을 끼고 있는 대도시입니다.",
    "이모지 🙂🚀👩‍💻 and mixed English, 漢字, too.",
    "The quick brown fox jumps over the lazy dog.",
    "```python\ndef add(a, b):\n    return a + b  # 더하기\n```\n",
    "  leading spaces,\ttabs\nand\n\nblank lines  ",
]


def stream(tok, ids):
    d = StreamDecoder(tok)
    chunks = [d.step(i) for i in ids]
    chunks.append(d.flush())
    return chunks


@pytest.fixture(params=["tiny42", "smollm2"])
def tok(request, tiny42_loaded, smollm2_loaded):
    return {"tiny42": tiny42_loaded, "smollm2": smollm2_loaded}[request.param][1]


@pytest.mark.parametrize("text", TEXTS)
def test_stream_equals_full_decode(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    chunks = stream(tok, ids)
    full = tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert "".join(chunks) == full == text
    assert not any("\ufffd" in c for c in chunks)  # no chunk ever ends inside a character


def test_hangul_split_across_byte_tokens_is_held(tiny42_loaded):
    tok = tiny42_loaded[1]
    ids = tok.encode("뷁", add_special_tokens=False)  # a rare syllable: several byte tokens
    assert len(ids) > 1
    chunks = stream(tok, ids)
    assert [c for c in chunks if c] == ["뷁"]  # nothing shown until the syllable is whole


def test_each_step_decodes_a_short_window(tiny42_loaded):
    tok = tiny42_loaded[1]
    d = StreamDecoder(tok)
    for i in tok.encode("서울은 한강을 끼고 있는 대도시입니다. " * 20, add_special_tokens=False):
        d.step(i)
        assert len(d.ids) - d.prefix <= 4  # the window never grows with the reply
