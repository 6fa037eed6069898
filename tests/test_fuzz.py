"""Property tests (hypothesis): streaming detokenization and stop strings on random input."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm42.gen.detokenize import StreamDecoder
from llm42.gen.stops import StopFilter

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", params=["tiny42", "smollm2"])
def tok(request, tiny42_loaded, smollm2_loaded):
    return {"tiny42": tiny42_loaded, "smollm2": smollm2_loaded}[request.param][1]


@FUZZ
@given(data=st.data())
def test_stream_equals_full_decode_for_random_token_sequences(tok, data):
    ids = data.draw(st.lists(st.integers(0, len(tok) - 1), max_size=60))
    d = StreamDecoder(tok)
    chunks = [d.step(i) for i in ids] + [d.flush()]
    full = tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert "".join(chunks) == full
    # a chunk shown mid-stream never ends inside a character the next tokens complete
    assert all(not c.endswith("\ufffd") for c in chunks[:-1] if c) or "\ufffd" in full


@FUZZ
@given(
    text=st.text(alphabet=st.sampled_from(list("ab <>:humanbot한글 \n")), max_size=80),
    cuts=st.lists(st.integers(0, 80), max_size=12),
)
def test_stop_filter_never_drops_or_leaks_text(text, cuts):
    stop = "<human>:"
    pieces, last = [], 0
    for c in sorted(set(min(c, len(text)) for c in cuts)) + [len(text)]:
        pieces.append(text[last:c])
        last = c
    f, shown, hit = StopFilter((stop,)), [], False
    for p in pieces:
        out, hit = f.feed(p)
        shown.append(out)
        if hit:
            break
    if not hit:
        shown.append(f.flush())
    shown = "".join(shown)
    if stop in text:
        assert hit and shown == text[: text.index(stop)]  # everything before the marker, nothing of it
    else:
        assert not hit and shown == text  # nothing lost, nothing held forever
