"""llm42's own Llama and tokenizer (loaded without transformers) against transformers' own, on real model files."""

import subprocess
import sys

import pytest
import torch

from llm42.gen.generate import generate_steps, open_cache
from llm42.gen.kvcache import KVCache
from llm42.model import llama
from llm42.model.tokenizer import Tokenizer
from llm42.settings import SamplingSettings
from llm42.template import chat_format

# fp32 sums of up to ~1.5k products taken in another order (a weight at another alignment picks another kernel
# path) differ by a few ulps of the largest partial sums; through 30 layers that stays far below 1e-4 of the logits'
# scale (seen: 1e-6), while a wrong op (mask, rotary, a missing norm) moves logits by whole units
RELATIVE = 1e-4


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (a - b).abs().max().item() <= RELATIVE * b.abs().max().item()


@pytest.fixture(params=["smollm2", "tiny42"])
def pair(request):
    """(llm42's model, transformers' model, their tokenizers) for one real folder, both fp32."""
    name = request.param
    folder = request.getfixturevalue(name)
    model, tok = request.getfixturevalue(f"{name}_loaded")
    return llama.load(folder, torch.float32), model, Tokenizer.read(folder), tok, folder


def test_the_state_dict_and_config_are_transformers_own(pair):
    own, hf, *_ = pair
    assert set(own.state_dict()) == set(hf.state_dict())
    for key, value in hf.state_dict().items():
        assert torch.equal(own.state_dict()[key], value), key
    for name in ("num_key_value_heads", "head_dim", "rms_norm_eps", "vocab_size", "tie_word_embeddings"):
        assert getattr(own.config, name) == getattr(hf.config, name)
    assert own.generation_config.eos_token_id == hf.generation_config.eos_token_id
    assert own.generation_config.temperature is None  # not set in the file: None, as transformers leaves it


def prefill(model, kv, ids):
    kv.begin(len(ids))
    x = torch.tensor([ids])
    with torch.inference_mode():
        if isinstance(model, llama.Llama):
            out = model.prefill(x, kv)
        else:
            out = model(input_ids=x, cache=kv.hf_cache(), use_cache=True, logits_to_keep=1).logits[:, -1]
    kv.commit()
    return out


@pytest.mark.parametrize("chunks", [[40], [25, 15], [39, 1], [1, 1, 38]])
def test_prefill_matches_transformers_forward_after_any_cached_prefix(pair, chunks):
    """A first prefill (causal), one after cached tokens (an explicit mask), and single tokens: the logits and every
    layer's keys and values written into the cache."""
    own, hf, *_ = pair
    ids = torch.randint(0, own.config.vocab_size, (sum(chunks),), generator=torch.Generator().manual_seed(0)).tolist()
    caches = [KVCache(m.config, 64, torch.float32, "cpu") for m in (own, hf)]
    start = 0
    for n in chunks:
        mine, theirs = (prefill(m, kv, ids[start : start + n]) for m, kv in zip((own, hf), caches))
        start += n
        assert close(mine, theirs)
    for layer in range(own.config.num_hidden_layers):
        assert close(caches[0].k[layer][:, :start], caches[1].k[layer][:, :start])
        assert close(caches[0].v[layer][:, :start], caches[1].v[layer][:, :start])


def test_a_greedy_chat_reply_is_transformers_reply(pair):
    """Two turns through the prompt cache (the second prefills after the first's cached tokens): the same tokens as
    with transformers' model wherever the top two logits are further apart than the tolerance."""
    own, hf, ours, theirs, folder = pair
    fmt = chat_format(theirs, str(folder))
    s = SamplingSettings(temperature=0, repetition_penalty=1.0, max_new_tokens=24)
    caches = [open_cache(m) for m in (own, hf)]
    dialog = [{"role": "user", "content": "What is the capital of France?"}]
    for _ in range(2):
        prompt = fmt.encode(dialog)
        replies = []
        for cache in caches:
            replies.append([st.token for st in generate_steps(cache, prompt, s, set())])
        mine, expected = replies
        margins = _margins(hf, prompt, expected)
        agreed = next((i for i, m in enumerate(margins) if m <= 2 * RELATIVE), len(expected))
        assert mine[: agreed + 1] == expected[: agreed + 1]
        dialog += [{"role": "assistant", "content": theirs.decode(expected)}, {"role": "user", "content": "And Korea?"}]


def _margins(model, prompt, reply):
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + reply])).logits[0, len(prompt) - 1 : -1]
    top = logits.topk(2).values
    return ((top[:, 0] - top[:, 1]) / logits.abs().amax(-1)).tolist()  # relative to the logits' scale, as RELATIVE


TEXTS = [
    "Hello, world!",
    "안녕하세요, 42dot LLM 입니다. 한국어와 English 를 섞어 씁니다.",
    "def f(x):\n    return x ** 2  # 제곱\n\n\tindented\r\n",
    "emoji 🙂👍🏽 and CJK 漢字 and a special token <|endoftext|> inside <|im_start|>",
    "   leading and trailing spaces   ",
    "",
]


def test_the_tokenizer_encodes_and_decodes_as_transformers_does(pair):
    *_, ours, theirs, _ = pair
    assert ours.eos_token_id == theirs.eos_token_id
    for text in TEXTS:
        ids = theirs.encode(text, add_special_tokens=False)
        assert ours.encode(text, add_special_tokens=False) == ids, text
        assert ours.encode(text) == theirs.encode(text), text
        for skip in (False, True):
            kw = {"skip_special_tokens": skip, "clean_up_tokenization_spaces": False}
            assert ours.decode(ids, **kw) == theirs.decode(ids, **kw)
        assert [ours.convert_ids_to_tokens(i) for i in ids] == theirs.convert_ids_to_tokens(ids)


def test_the_chat_template_renders_as_transformers_renders_it(pair):
    """SmolLM2's own template, and the 42dot template installed on the 42dot-shaped model: with and without a
    system prompt, several turns, Korean, the generation prompt."""
    *_, ours, theirs, folder = pair
    a, b = chat_format(ours, str(folder)), chat_format(theirs, str(folder))
    dialogs = [
        [{"role": "user", "content": "안녕?"}],
        [{"role": "system", "content": "You answer briefly."}, {"role": "user", "content": "Hi"}],
        [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1 한국어"},
            {"role": "user", "content": "Q2\n  code"},
        ],
    ]
    for dialog in dialogs:
        assert a.encode(dialog) == b.encode(dialog)
        for gen in (False, True):
            kw = {"tokenize": False, "add_generation_prompt": gen}
            assert ours.apply_chat_template(dialog, **kw) == theirs.apply_chat_template(dialog, **kw)
    assert a.default_system() == b.default_system()
    assert a.stop_strings == b.stop_strings


def test_a_plain_llama_opens_without_importing_transformers(smollm2, tmp_path):
    """The point of llm42's own Llama: a start that never imports transformers' modelling code (~4 s on two cores).
    The engine opens the folder, replies, and transformers is not in the process."""
    code = f"""
import sys
from llm42.engine import open_engine, complete
from llm42.settings import ModelSettings, SamplingSettings
engine, _, _ = open_engine(ModelSettings(path={str(smollm2)!r}, device="cpu"), 8)
text, _ = complete(engine, "What is the capital of France?", SamplingSettings(temperature=0, max_new_tokens=8))
print(type(engine.model).__module__, type(engine.tokenizer).__module__, repr(text))
from llm42.cpu.memory import mapping_of
print([n for n, t in engine.model.state_dict().items() if mapping_of(t)])
print(sorted(m for m in sys.modules if m.split(".")[0] == "transformers" or m == "torch._dynamo"))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    first, mapped, second = done.stdout.splitlines()[-3:]
    assert first.startswith("llm42.model.llama llm42.model.tokenizer ") and "Paris" in first
    assert mapped == "[]"  # read from the files' mapping, nothing left there once loaded (memory.own)
    assert second == "[]"


def test_weights_read_from_the_files_mapping_are_the_files_own_and_end_in_memory_of_their_own(tiny42):
    """A mapped load (the engine's) reads each weight as a view of its file's mapping: the same tensors as a plain
    read, still right after `release` drops a weight's pages (they come back from the file), and after `own` none
    lies in the mapping, the values unchanged and a tied table still the head's."""
    from llm42.cpu.memory import mapping_of, own, release

    plain = llama.load(tiny42, torch.float32)
    model = llama.load(tiny42, torch.float32, mapped=True)
    assert all(mapping_of(t) for t in model.state_dict().values())  # fp32 files read as fp32: all mapped
    converted = llama.load(tiny42, torch.bfloat16, mapped=True)  # read as another dtype: nothing mapped
    assert not [n for n, t in converted.state_dict().items() if mapping_of(t)]
    weight = model.model.layers[0].mlp.gate_proj.weight
    release(weight)
    assert torch.equal(weight, plain.model.layers[0].mlp.gate_proj.weight)
    assert own(model) > 0
    assert not [n for n, t in model.state_dict().items() if mapping_of(t)]
    for key, value in plain.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    if model.config.tie_word_embeddings:
        assert model.lm_head.weight is model.model.embed_tokens.weight
    assert not mapping_of(torch.ones(3))


def _asked_huge(t: torch.Tensor) -> bool:
    """Whether the mapping `t`'s data lies in is marked for huge pages (/proc/self/smaps: VmFlags "hg", set by
    MADV_HUGEPAGE; whether the kernel found free 2 MB pages at that moment is its own affair)."""
    at, inside = t.data_ptr(), False
    for line in open("/proc/self/smaps"):
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= at < hi
        elif inside and head == "VmFlags:":
            return "hg" in line.split()[1:]
    return False


def test_what_a_model_keeps_and_its_kv_cache_lie_in_huge_pages_where_the_kernel_gives_them_on_request(tiny42):
    """`own` moves every kept tensor of 2 MB or more into memory the kernel backs with 2 MB pages (asked with
    MADV_HUGEPAGE where THP is in "madvise" mode), the values the same, a shared tensor still shared; a tensor under
    2 MB stays where it is; the KV cache's buffers are made there."""
    from llm42.cpu import memory
    from llm42.gen.kvcache import KVCache

    if not memory.huge_pages_on_request():
        pytest.skip("this kernel gives no huge pages on request (THP not in madvise mode)")
    model = llama.load(tiny42, torch.float32)
    big = torch.randn(1024, 1024)  # 4 MB
    model.model.layers[0].mlp.register_buffer("extra", big.clone())
    model.model.layers[1].mlp.register_buffer("extra", model.model.layers[0].mlp.extra)  # shared
    small = model.model.norm.weight
    before = {k: v.clone() for k, v in model.state_dict().items()}
    memory.own(model)
    moved = model.model.layers[0].mlp.extra
    assert memory.in_huge_pages(moved) and torch.equal(moved, big) and _asked_huge(moved)
    assert model.model.layers[1].mlp.extra is moved
    assert model.model.norm.weight is small and not memory.in_huge_pages(small)
    for key, value in before.items():
        assert torch.equal(model.state_dict()[key], value), key
    kv = KVCache(model.config, 1 << 20, torch.bfloat16, "cpu")
    kv.begin(-(-memory.HUGE // (kv.heads * kv.head_dim * 2)))  # 2 MB a buffer
    assert memory.in_huge_pages(kv.k[0]) and _asked_huge(kv.k[0])
