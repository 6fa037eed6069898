"""The in-place KV cache: same tokens as transformers' own cache, across growth and crops."""

import torch

from llm42.gen.generate import generate_steps, open_cache
from llm42.gen.tuning import Kernels, tune
from llm42.settings import SamplingSettings


def test_growing_past_the_first_capacity_matches_hf_generate(tiny42_loaded):
    model, tok = tiny42_loaded
    prompt = tok.encode("서울은 한강을 끼고 있는 대도시입니다. " * 30, add_special_tokens=False)[:230]
    s = SamplingSettings(temperature=0, repetition_penalty=1.0, max_new_tokens=60)  # 230 + 60 crosses 256
    ours = [st.token for st in generate_steps(open_cache(model, 320), prompt, s, set())]
    x = torch.tensor([prompt])
    theirs = model.generate(
        x,
        attention_mask=torch.ones_like(x),
        do_sample=False,
        max_new_tokens=60,
        min_new_tokens=60,
        repetition_penalty=1.0,
    )[0, len(prompt) :].tolist()
    assert ours == theirs


def test_crop_then_regrow_equals_fresh(tiny42_loaded):
    model, tok = tiny42_loaded
    s = SamplingSettings(temperature=0, max_new_tokens=20)
    a = tok.encode("한국의 수도는 어디인가요? " * 10, add_special_tokens=False)
    b = a[:40] + tok.encode(" 오늘 날씨가 맑습니다.", add_special_tokens=False)
    cache = open_cache(model, 320)
    list(generate_steps(cache, a, s, set()))
    got = [st.token for st in generate_steps(cache, b, s, set())]
    assert cache.reused == 40
    assert got == [st.token for st in generate_steps(open_cache(model, 320), b, s, set())]


def test_kernel_choice_is_measured_once_and_remembered(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(
        LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, vocab_size=300)
    ).to(torch.bfloat16)
    first = tune(model, tmp_path / "kernels.json")
    assert "measured on this machine" in first.note and (tmp_path / "kernels.json").is_file()
    assert tune(model, tmp_path / "kernels.json") == first
    assert tune(model.float(), tmp_path / "kernels.json") == Kernels()  # fp32: nothing to choose


def test_a_kernel_choice_file_of_another_shape_is_measured_again(tmp_path):
    """A file of the right name but the wrong content (valid JSON of another shape, an entry with other fields)
    costs one measurement, never a traceback, and is written anew."""
    import json

    from transformers import LlamaConfig, LlamaForCausalLM

    from llm42.gen.tuning import cached

    model = LlamaForCausalLM(
        LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4, vocab_size=300)
    ).to(torch.bfloat16)
    path = tmp_path / "kernels.json"
    path.write_text("[1, 2, 3]")
    assert cached(model, path) is None
    first = tune(model, path)
    assert "measured on this machine" in first.note and cached(model, path) == first
    key = next(iter(json.loads(path.read_text())))
    path.write_text(json.dumps({key: {"prefill": "fast"}, "other": 1}))
    assert cached(model, path) is None and "measured on this machine" in tune(model, path).note
    assert cached(model, path) is not None
