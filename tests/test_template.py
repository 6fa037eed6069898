"""The 42dot SFT prompt: exact text, exact ids, and fitting a dialog to the window."""

import pytest

from llm42.conversation import Dialog, Role
from llm42.template import KEEP, ContextError, chat_format, fit

SYSTEM = (  # the system prompt 42dot trained with, as published with the model
    "호기심 많은 인간 (human)과 인공지능 봇 (AI bot)의 대화입니다. "
    "봇의 이름은 42dot LLM이고 포티투닷 (42dot)에서 개발했습니다. "
    "봇은 인간의 질문에 대해 친절하게 유용하고 상세한 답변을 제공합니다. "
)


def two_turns(system=None):
    d = Dialog(system=system)
    d.add(Role.USER, "안녕하세요")
    d.add(Role.ASSISTANT, "안녕하세요! 무엇을 도와드릴까요?")
    d.add(Role.USER, "한국의 수도는 어디인가요?")
    return d


@pytest.fixture
def fmt(tiny42_loaded):
    return chat_format(tiny42_loaded[1], "tiny-42dot")


def test_two_turn_prompt_text_is_byte_identical(fmt):
    text = fmt.tokenizer.apply_chat_template(two_turns().render(), tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|startoftext|>"
        + SYSTEM
        + "<human>: 안녕하세요 <bot>: 안녕하세요! 무엇을 도와드릴까요?<|endoftext|>"
        + "<human>: 한국의 수도는 어디인가요? <bot>:"
    )
    assert fmt.stop_strings == ("<human>:",)


def test_custom_system_prompt_replaces_the_default(fmt):
    text = fmt.tokenizer.apply_chat_template(two_turns("You are terse. ").render(), tokenize=False)
    assert text.startswith("<|startoftext|>You are terse. <human>: 안녕하세요 <bot>:")


def test_two_turn_prompt_ids(fmt):
    tok = fmt.tokenizer
    ids = fmt.encode(two_turns().render())
    bos, eos = tok.bos_token_id, tok.eos_token_id
    # labelled pieces; the boundaries fall where the byte-level pre-tokenizer splits anyway
    pieces = [
        ("BOS", [bos]),
        ("system prompt", tok.encode(SYSTEM.rstrip(" "), add_special_tokens=False)),
        (
            "turn 1 user",
            tok.encode(" <human>: 안녕하세요 <bot>: 안녕하세요! 무엇을 도와드릴까요?", add_special_tokens=False),
        ),
        ("turn 1 EOS", [eos]),
        ("turn 2 user", tok.encode("<human>: 한국의 수도는 어디인가요? <bot>:", add_special_tokens=False)),
    ]
    expected = [i for _, p in pieces for i in p]
    assert ids == expected, [(label, p) for label, p in pieces]
    assert ids.count(eos) == 1 and ids.count(bos) == 1
    assert tok.decode(ids) == tok.apply_chat_template(two_turns().render(), tokenize=False)


def test_a_reply_s_generated_ids_are_fed_as_drawn_and_the_text_stays_the_template_s(fmt):
    tok = fmt.tokenizer
    d = two_turns()
    reply = d.messages[1].content
    drawn = [tok.convert_tokens_to_ids(c) for c in _byte_pieces(tok, " " + reply)]
    assert tok.decode(drawn) == " " + reply and drawn != tok.encode(" " + reply, add_special_tokens=False)
    d.messages[1].ids = drawn
    asked = fmt.encode(Dialog(d.system, d.messages[:1]).render())  # the prompt the reply was drawn after
    ids = fmt.encode(d.render(ids=True))
    assert ids[: len(asked) + len(drawn)] == asked + drawn
    assert tok.decode(ids) == tok.decode(fmt.encode(d.render()))  # the same text, the reply split as drawn
    d.messages[1].ids = drawn[:-1]  # no longer the reply's text: its text is tokenized as before
    assert fmt.encode(d.render(ids=True)) == fmt.encode(d.render())


def _byte_pieces(tok, text: str) -> list[str]:
    """`text` as byte-level BPE's one-byte tokens (GPT-2's printable alphabet): a split BPE would not choose."""
    from llm42.gen.detokenize import _BYTES

    shown = {b: c for c, b in _BYTES.items()}
    return [shown[b] for b in text.encode()]


def test_model_own_template_is_kept(smollm2_loaded):
    fmt = chat_format(smollm2_loaded[1], "smollm2")
    assert fmt.stop_strings == ()
    assert "<|im_start|>" in fmt.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)


def long_dialog(turns):
    d = Dialog()
    for i in range(turns):
        d.add(Role.USER, f"질문 {i}: 오늘 날씨가 맑습니다. 내일은 비가 올 수도 있습니다.")
        d.add(Role.ASSISTANT, "우산을 챙기세요. 감사합니다. " * 3)
    d.add(Role.USER, "마지막 질문")
    return d


def test_fit_drops_the_oldest_whole_turns_in_one_block(fmt):
    d = long_dialog(12)
    full = len(fmt.encode(d.render()))
    window, max_new = 320, 64
    budget = window - max_new
    assert full > budget
    f = fit(fmt, d, max_new, window)
    kept = d.render(f.dropped)
    assert kept[0]["content"].startswith(f"질문 {f.dropped}:")  # whole turns, oldest first
    # enough go at once that the prompt fills at most KEEP of the budget, and no more than that
    assert len(f.ids) <= KEEP * budget < len(fmt.encode(d.render(f.dropped - 1)))
    assert fmt.tokenizer.decode(f.ids).startswith("<|startoftext|>" + SYSTEM)  # system prompt kept


def test_turns_left_out_stay_out_while_the_rest_fits(fmt):
    """The next turns keep the same turns out, so their prompts extend the cached one, until it is full."""
    d = long_dialog(12)
    f = fit(fmt, d, 64, 320)
    d.add(Role.ASSISTANT, "네.")
    d.add(Role.USER, "하나 더")
    again = fit(fmt, d, 64, 320, start=f.dropped)
    assert again.dropped == f.dropped and again.ids[: len(f.ids)] == f.ids  # the prompt grew at its end only
    assert fit(fmt, d, 64, 320).dropped >= f.dropped  # from scratch it would drop (at least) as many


def test_the_dialog_keeps_its_turns_out_until_a_cut_reaches_them():
    """The chat owns which turns stay out: an /undo of the newest exchange keeps them out, a cut into them (an
    /edit of an old message, /reset) lets the next prompt be fitted afresh."""
    d = Dialog()
    for i in range(4):
        d.add(Role.USER, f"question {i}")
        d.add(Role.ASSISTANT, f"answer {i}")
    d.left_out = 2
    d.cut(6)  # the newest exchange goes
    assert d.left_out == 2 and len(d.messages) == 6
    d.cut(4)  # all of the first two turns kept
    assert d.left_out == 2
    d.cut(3)  # into the second of them
    assert d.left_out == 0 and len(d.messages) == 3


def test_fit_keeps_everything_when_it_fits(fmt):
    f = fit(fmt, two_turns(), 64, 320)
    assert f.dropped == 0


def test_a_message_that_alone_cannot_fit_is_refused(fmt):
    d = Dialog()
    d.add(Role.USER, "가나다라 " * 300)
    with pytest.raises(ContextError, match="window is 320 tokens with 64 kept for the reply"):
        fit(fmt, d, 64, 320)


def test_the_default_system_prompt_is_read_from_the_template(fmt, smollm2_loaded):
    """What /system shows when none is set: the text the template puts in by itself."""
    assert fmt.default_system() == SYSTEM.strip()
    smol = chat_format(smollm2_loaded[1], "smollm2").default_system()
    assert smol.startswith("You are a helpful AI assistant named SmolLM")
