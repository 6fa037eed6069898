"""Generation against transformers' own generate, and the prompt cache against a fresh prefill."""

import pytest
import torch

from llm42.gen.generate import generate_steps, open_cache
from llm42.gen.penalty import Scope
from llm42.model.plan import Decode
from llm42.settings import SamplingSettings

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not

GREEDY = SamplingSettings(temperature=0, repetition_penalty=1.0, max_new_tokens=40)


def chat_ids(tok, text):
    return tok.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]


def ours(model, prompt, s, stop_ids=frozenset(), cache=None, seed=None):
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return [st.token for st in generate_steps(cache or open_cache(model), prompt, s, set(stop_ids), g)]


def theirs(model, prompt, **kw):
    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long), **kw)
    return out[0, len(prompt) :].tolist()


def test_greedy_equals_hf_generate_token_for_token(smollm2_loaded):
    model, tok = smollm2_loaded
    for question in ["What is the capital of France?", "Write a haiku about the sea."]:
        prompt = chat_ids(tok, question)
        expected = theirs(
            model, prompt, do_sample=False, max_new_tokens=40, eos_token_id=tok.eos_token_id, repetition_penalty=1.0
        )
        got = ours(model, prompt, GREEDY, {tok.eos_token_id})
        assert got == expected
    assert "Paris" in tok.decode(ours(model, chat_ids(tok, "What is the capital of France?"), GREEDY))


def in_scope(last_n: int, prompt: list[int], vocab: int, penalty: float = 1.2):
    """transformers' repetition penalty processor over the tokens llm42's scope covers (penalty.py, tested on its
    own in test_penalty.py), worked out afresh at each step from the reply so far."""
    from transformers.generation.logits_process import LogitsProcessorList, RepetitionPenaltyLogitsProcessor

    inner = RepetitionPenaltyLogitsProcessor(penalty)

    def apply(input_ids, scores):
        scope = Scope(vocab, "cpu", prompt, last_n)
        for token in input_ids[0, len(prompt) :].tolist():
            scope.add(token)
        ids = scope.tokens()
        return inner(torch.tensor([ids]), scores) if ids else scores

    return LogitsProcessorList([apply])


def test_greedy_with_repetition_penalty_equals_hf(smollm2_loaded):
    """42dot's scope (-1: the prompt and the reply) is transformers' own processor; the default scope (the reply's
    last 64 tokens less those quoting the prompt) is that processor over those tokens: a reply that quotes the
    prompt, and one long enough that the window slides."""
    model, tok = smollm2_loaded
    prompt = chat_ids(tok, "List three colours.")
    s = SamplingSettings(temperature=0, repetition_penalty=1.2, repeat_last_n=-1, max_new_tokens=30)
    expected = theirs(
        model, prompt, do_sample=False, max_new_tokens=30, repetition_penalty=1.2, eos_token_id=tok.eos_token_id
    )
    assert ours(model, prompt, s, {tok.eos_token_id}) == expected
    quote = "Repeat this sentence exactly: the little brown dog ran over the green hill to find the old red ball."
    for text, last_n in (("Write a long story about a dragon and a knight.", 8), (quote, 64)):
        prompt = chat_ids(tok, text)
        s = SamplingSettings(temperature=0, repetition_penalty=1.2, repeat_last_n=last_n, max_new_tokens=90)
        scope = in_scope(last_n, prompt, model.config.vocab_size)
        expected = theirs(
            model, prompt, do_sample=False, max_new_tokens=90, logits_processor=scope, eos_token_id=tok.eos_token_id
        )
        assert ours(model, prompt, s, {tok.eos_token_id}) == expected, last_n


def test_stops_at_eos_and_at_max_new_tokens(smollm2_loaded):
    model, tok = smollm2_loaded
    got = ours(model, chat_ids(tok, "Say hello."), GREEDY, {tok.eos_token_id})
    assert got[-1] == tok.eos_token_id and len(got) < 40
    assert len(ours(model, chat_ids(tok, "Count to 100."), SamplingSettings(temperature=0, max_new_tokens=7))) == 7


def test_same_seed_same_reply_other_seed_other_reply(smollm2_loaded):
    model, tok = smollm2_loaded
    prompt = chat_ids(tok, "Tell me a story.")
    s = SamplingSettings(temperature=1.0, max_new_tokens=20)
    assert ours(model, prompt, s, seed=1) == ours(model, prompt, s, seed=1)
    assert ours(model, prompt, s, seed=1) != ours(model, prompt, s, seed=2)


def test_prompt_cache_gives_the_same_tokens_as_a_fresh_prefill(smollm2_loaded):
    model, tok = smollm2_loaded
    history = [{"role": "user", "content": "What is the capital of France?"}]
    cache = open_cache(model)
    first = tok.apply_chat_template(history, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    reply = ours(model, first, GREEDY, {tok.eos_token_id}, cache=cache)
    history += [
        {"role": "assistant", "content": tok.decode(reply, skip_special_tokens=True)},
        {"role": "user", "content": "And of Germany?"},
    ]
    second = tok.apply_chat_template(history, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    cached = ours(model, second, GREEDY, {tok.eos_token_id}, cache=cache)
    assert cache.reused > len(first) // 2  # the follow-up prefilled only what was new
    assert cached == ours(model, second, GREEDY, {tok.eos_token_id})
    # going back (an /undo) reuses the common prefix and still matches
    assert ours(model, first, GREEDY, {tok.eos_token_id}, cache=cache) == reply
    assert cache.reused == len(first) - 1
    # the same prompt again (a /regen) starts from the logits kept from its prefill: nothing to feed, same reply
    assert ours(model, first, GREEDY, {tok.eos_token_id}, cache=cache) == reply
    assert cache.reused == len(first)


def test_interrupted_forward_leaves_a_usable_cache(smollm2_loaded):
    model, tok = smollm2_loaded
    prompt = chat_ids(tok, "What is the capital of France?")
    cache = open_cache(model)
    steps = generate_steps(cache, prompt, GREEDY, {tok.eos_token_id})
    next(steps), next(steps)
    steps.close()  # as when the user stops a reply
    assert ours(model, prompt, GREEDY, {tok.eos_token_id}, cache=cache) == ours(
        model, prompt, GREEDY, {tok.eos_token_id}
    )


def test_llm42_decode_step_equals_transformers_forward(smollm2_loaded):
    """The fast path and its slow twin: llm42's own decode step against transformers' forward per token,
    greedy and sampled at one seed, on real weights (fp32: the same maths, so the same tokens)."""
    model, tok = smollm2_loaded
    prompt = chat_ids(tok, "Tell me about the sea in three sentences.")
    fast, slow = open_cache(model), open_cache(model, decode=Decode.FORWARD)
    assert fast.decoder is not None and slow.decoder is None
    for s, seed in [(GREEDY, None), (SamplingSettings(temperature=0.8, max_new_tokens=40), 5)]:
        assert ours(model, prompt, s, cache=fast, seed=seed) == ours(model, prompt, s, cache=slow, seed=seed)


def test_static_buffers_give_the_same_tokens_as_growing_ones(smollm2_loaded, tiny42_loaded):
    """The fixed-shape step a CUDA graph replays (whole-window KV buffers, position as a tensor, masked
    attention), run on the CPU: the same tokens as the dynamic path at the same seed, across turns."""
    for model, tok in (smollm2_loaded, tiny42_loaded):
        first = tok.encode("서울은 한강을 끼고 있는 대도시입니다. The sea is calm.", add_special_tokens=False)
        second = first + tok.encode(" 오늘 날씨가 맑습니다.", add_special_tokens=False)
        s = SamplingSettings(temperature=0.9, max_new_tokens=30)
        window = 320 if model.config.max_position_embeddings == 320 else 512
        dynamic, static = open_cache(model, window), open_cache(model, window, decode=Decode.GRAPH)
        for prompt in (first, second, first):  # a follow-up, then back (an /undo): the cache is reused both ways
            assert ours(model, prompt, s, cache=static, seed=11) == ours(model, prompt, s, cache=dynamic, seed=11)
        assert static.reused == dynamic.reused > 0


def test_a_forward_stopped_before_its_tokens_were_recorded_keeps_the_cache(tiny42_loaded):
    """Ctrl+C lands between bytecodes: after a step or verify pass wrote its positions and before the cache
    recorded its tokens. The next prompt still reuses what was recorded (it was all reset before: a stopped
    reply then cost a whole prefill, seen as "0 from the cache")."""
    model, _ = tiny42_loaded
    prompt = list(range(100, 160))
    cache = open_cache(model, 512)
    cache.feed(prompt)
    cache.decoder.step(7)  # written, as if stopped before `ids` took the token
    cache.decoder.verify([8, 9])
    assert cache.kv.n == len(prompt) + 3 and len(cache.ids) == len(prompt)
    assert cache.reuse([*prompt, 5, 6]) == len(prompt)
    assert cache.kv.n == len(prompt)


@pytest.mark.parametrize("width", ["bf16", "int8", "int4"])
def test_a_step_in_one_call_gives_the_python_loop_s_bits(tiny42, width):
    """Every layer of a step (and of a verify pass) in one call to llm42's library runs the kernels the Python loop
    calls, in its order: the same logits to the bit, at each width, also across a growth of the KV buffers."""
    from llm42.cpu import native, widen
    from llm42.cpu.pairs import pair
    from llm42.gen.tuning import Kernels
    from llm42.model import llama
    from llm42.model.quantize import quantize_model

    if native.library() is None:
        pytest.skip("no C compiler: PyTorch's kernels are the only ones")
    model = llama.load(tiny42, torch.bfloat16)
    if width != "bf16":
        quantize_model(model, width)
    widen.widen_prefill(model)
    widen.pack(model)  # the panels where this CPU's kernels want them, as the chat lays them out
    pair(model)  # or the pairs
    own = Kernels(own_matmuls=["Linear", "WideLinear", "Int8Linear", "Int4Linear"], own_attention=True)
    cache = open_cache(model, 320, own)
    decoder = cache.decoder
    assert decoder.step_spec is not None and decoder.row_spec is not None
    prompt = list(range(100, 350))
    cache.reuse(prompt)
    cache.feed(prompt)
    assert cache.kv.capacity == 256  # the steps below grow the buffers (new addresses) halfway
    logits = {}
    for one in (True, False):
        decoder.one_call = one
        steps = [decoder.step(t) for t in range(400, 410)]
        logits[one] = (torch.cat(steps), decoder.verify([7, 8, 9, 10]), decoder.verify([11]))
        cache.kv.crop(len(prompt))
    assert cache.kv.capacity == 320
    for a, b in zip(logits[True], logits[False]):
        assert torch.equal(a, b)
    assert not torch.equal(logits[True][1][0], logits[True][2][0])  # (the verify rows are not all one row)


def test_a_step_in_one_call_reads_new_kv_buffers_also_where_one_lies_where_an_old_one_was(tiny42):
    """The one-call step holds the KV buffers' addresses; after the cache makes new buffers it takes them all
    again, also where the first layer's new buffer lies where its old one was (an allocator reuses freed memory):
    comparing that one address kept the other layers' old, freed ones."""
    from llm42.cpu import native
    from llm42.gen.tuning import Kernels
    from llm42.model import llama

    if native.library() is None:
        pytest.skip("no C compiler: PyTorch's kernels are the only ones")
    model = llama.load(tiny42, torch.bfloat16)
    cache = open_cache(model, 320, Kernels(own_matmuls=["Linear"], own_attention=True))
    decoder, kv, prompt = cache.decoder, cache.kv, list(range(100, 150))
    assert decoder.step_spec is not None
    cache.reuse(prompt)
    cache.feed(prompt)
    expected = decoder.step(400)
    kv.crop(len(prompt))
    old_k, old_v = list(kv.k), list(kv.v)
    with torch.inference_mode():
        kv._allocate(kv.capacity)  # new buffers (of the same size here), the past copied into them
        kv.k[0] = old_k[0]  # layer 0's buffer where it was (the same past in it)
        for t in [*old_k[1:], *old_v]:
            t.fill_(float("nan"))  # what an old buffer holds once its memory is used again
    assert torch.equal(decoder.step(400), expected)


def test_own_kernels_are_as_close_to_fp32_as_pytorchs(smollm2):
    """bf16 (and int8) decode steps through llm42's C kernels vs PyTorch's kernels, both against fp32: llm42's
    must not be less accurate than twice PyTorch's error (int8 adds x's rounding to int8 per block)."""
    import pytest
    from transformers import AutoModelForCausalLM

    from llm42.cpu import native
    from llm42.model.quantize import quantize_model

    if native.library() is None:
        pytest.skip("no C compiler: PyTorch's kernels are the only ones")
    tok_ids = list(range(300, 340))
    for kind in ("bf16", "int8"):
        model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.bfloat16).eval()
        if kind == "int8":
            quantize_model(model, "int8")
        reference = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
        if kind == "int8":  # the same int8 weights, exactly, in fp32
            for name, m in model.named_modules():
                if hasattr(m, "qweight"):
                    reference.get_submodule(name).weight.data = m.dequantize(torch.float32)
        errors = {}
        for own in (False, True):
            from llm42.gen.tuning import Kernels

            k = Kernels(own_matmuls=["Linear", "Int8Linear"] if own else [], own_attention=own)
            cache, ref = open_cache(model, 512, k), open_cache(reference, 512)
            cache.reuse(tok_ids[:20]), ref.reuse(tok_ids[:20])
            cache.feed(tok_ids[:20]), ref.feed(tok_ids[:20])
            err = []
            for t in tok_ids[20:]:
                a, b = cache.step(t).float(), ref.step(t).float()
                err.append(float((a - b).norm() / b.norm()))
            errors[own] = max(err)
        print(kind, errors)
        assert errors[True] <= 2 * errors[False] + 0.01, (kind, errors)
