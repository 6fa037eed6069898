"""Generation against transformers' own generate, and the prompt cache against a fresh prefill."""

import torch

from llm42.generate import PromptCache, generate_steps
from llm42.settings import SamplingSettings

GREEDY = SamplingSettings(temperature=0, repetition_penalty=1.0, max_new_tokens=40)


def chat_ids(tok, text):
    return tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                   tokenize=True, return_dict=True)["input_ids"]


def ours(model, prompt, s, stop_ids=frozenset(), cache=None, seed=None):
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    return [st.token for st in generate_steps(cache or PromptCache(model), prompt, s, set(stop_ids), g)]


def theirs(model, prompt, **kw):
    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long), **kw)
    return out[0, len(prompt):].tolist()


def test_greedy_equals_hf_generate_token_for_token(smollm2_loaded):
    model, tok = smollm2_loaded
    for question in ["What is the capital of France?", "Write a haiku about the sea."]:
        prompt = chat_ids(tok, question)
        expected = theirs(model, prompt, do_sample=False, max_new_tokens=40, eos_token_id=tok.eos_token_id,
                          repetition_penalty=1.0)
        got = ours(model, prompt, GREEDY, {tok.eos_token_id})
        assert got == expected
    assert "Paris" in tok.decode(ours(model, chat_ids(tok, "What is the capital of France?"), GREEDY))


def test_greedy_with_repetition_penalty_equals_hf(smollm2_loaded):
    model, tok = smollm2_loaded
    prompt = chat_ids(tok, "List three colours.")
    s = SamplingSettings(temperature=0, repetition_penalty=1.2, max_new_tokens=30)
    expected = theirs(model, prompt, do_sample=False, max_new_tokens=30, repetition_penalty=1.2,
                      eos_token_id=tok.eos_token_id)
    assert ours(model, prompt, s, {tok.eos_token_id}) == expected


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
    cache = PromptCache(model)
    first = tok.apply_chat_template(history, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    reply = ours(model, first, GREEDY, {tok.eos_token_id}, cache=cache)
    history += [{"role": "assistant", "content": tok.decode(reply, skip_special_tokens=True)},
                {"role": "user", "content": "And of Germany?"}]
    second = tok.apply_chat_template(history, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    cached = ours(model, second, GREEDY, {tok.eos_token_id}, cache=cache)
    assert cache.reused > len(first) // 2  # the follow-up prefilled only what was new
    assert cached == ours(model, second, GREEDY, {tok.eos_token_id})
    # going back (an /undo) reuses the common prefix and still matches
    assert ours(model, first, GREEDY, {tok.eos_token_id}, cache=cache) == reply
    assert cache.reused == len(first) - 1


def test_interrupted_forward_leaves_a_usable_cache(smollm2_loaded):
    model, tok = smollm2_loaded
    prompt = chat_ids(tok, "What is the capital of France?")
    cache = PromptCache(model)
    steps = generate_steps(cache, prompt, GREEDY, {tok.eos_token_id})
    next(steps), next(steps)
    steps.close()  # as when the user stops a reply
    assert ours(model, prompt, GREEDY, {tok.eos_token_id}, cache=cache) == ours(model, prompt, GREEDY, {tok.eos_token_id})
