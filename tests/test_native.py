"""llm42's C kernels for decode steps, against exact fp32 arithmetic, with bounds from the rounding they do."""

import shutil

import pytest
import torch

from llm42.cpu import native, widen
from llm42.cpu.layers import Int4Linear, Int8Linear, pack_int4, pack_scales, unpack_int4

BF16 = 2**-8  # rounding to bf16 (8 significant bits) moves a value by at most this much of itself


@pytest.fixture(scope="module")
def lib():
    if native.compiler() is None:
        pytest.skip("no C compiler here: llm42 runs on PyTorch's kernels instead")
    assert native.library() is not None, "a C compiler is here, so the kernels must build"
    return native.library()


def accumulation(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A bound on fp32 summation error of each row of w @ x: k * 2^-24 * sum |w x| (any order)."""
    return w.shape[1] * 2**-24 * (w.abs().float() @ x.abs().float().T).T


def test_bf16_matrix_vector(lib):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(777, 2048, generator=g).bfloat16()
    x = torch.randn(1, 2048, generator=g).bfloat16()
    exact = x.float() @ w.float().T  # bf16 times bf16 is exact in fp32
    got = native.gemv_bf16(w, x).float()
    assert (got - exact).abs().le(exact.abs() * BF16 + accumulation(w, x) * 2).all()


@pytest.mark.parametrize("k", [96, 576, 2048, 2050])  # an odd number of 32-blocks, short and long rows, a tail
def test_bf16_several_rows_are_each_row_s_matrix_vector_bits(lib, k):
    """A verify pass's rows (1-9 of them) come out as each row's own one-row product, to the bit: speculation gives
    the tokens plain decoding gives where both run llm42's kernels. (The kernel blocks short and long rows
    differently, and groups the rows of x by up to 8 or 4; 777 weight rows leave a tail past its blocks of 4 and its
    tiles of 16.)"""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(777, k, generator=g).bfloat16()
    for m in (1, 2, 3, 4, 5, 7, 8, 9):
        x = torch.randn(m, k, generator=g).bfloat16()
        got = native.gemm_bf16(w, x)
        assert torch.equal(got, torch.cat([native.gemv_bf16(w, x[j : j + 1]) for j in range(m)]))
        exact = x.float() @ w.float().T
        assert (got.float() - exact).abs().le(exact.abs() * BF16 + accumulation(w, x) * 2).all()


@pytest.mark.parametrize("k", [576, 1536, 1100])  # one chunk, three chunks of the panel, a part chunk
def test_bf16_panels_each_row_the_same_bits_for_any_rows(lib, k):
    """bf16 weights in panels of 16 rows (the AVX2 layout): packed and unpacked losslessly, widened to fp32
    exactly; the product of any number of rows (one group, two groups of x rows that meet the panel in chunks,
    more than 48 rows in batches) gives each row the bits of its own one-row product, within the rounding bound.
    Run on every build: a build that does not pack (panel() 0) runs the plain C over the same layout."""
    g = torch.Generator().manual_seed(2)
    w = torch.randn(16 * 37, k, generator=g).bfloat16()  # 37 panels: a tail past the kernel's blocks of 4 and 2
    panels = widen.pack_bf16(w)
    assert torch.equal(widen.unpack_bf16(panels), w)
    assert torch.equal(widen.widen_bf16p(panels, torch.empty(k, w.shape[0])), w.float())
    x = torch.randn(50, k, generator=g).bfloat16()
    one = torch.cat([widen.gemm_bf16p(panels, x[j : j + 1]) for j in range(50)])
    exact = x.float() @ w.float().T
    assert (one.float() - exact).abs().le(exact.abs() * BF16 + accumulation(w, x) * 2).all()
    for m in (2, 3, 6, 7, 9, 12, 13, 50):
        assert torch.equal(widen.gemm_bf16p(panels, x[:m].contiguous()), one[:m]), m


@pytest.mark.parametrize("k", [576, 1536])  # SmolLM2's rows: 18 and 48 chunks of 32
def test_bf16_pairs_each_row_the_same_bits_for_any_rows(lib, k):
    """bf16 weights two rows interleaved (the AVX512-BF16 layout for short rows): packed and unpacked losslessly; the
    product of any number of rows of x (a step, a verify pass in one group of 9, two groups past it) is each row's
    own row-major product to the bit, so the chat's tokens are those of the row-major kernels. Run on every build: a
    build that does not lay weights out in pairs runs the row-major kernel over the unpacked weight."""
    from llm42.cpu import pairs

    g = torch.Generator().manual_seed(4)
    w = torch.randn(2 * 389, k, generator=g).bfloat16()  # 389 pairs: the threads' stretches end mid-way
    packed = pairs.pack_pairs(w)
    assert torch.equal(pairs.unpack_pairs(packed), w)
    assert packed.shape == (389, k // 32, 2, 32) and torch.equal(packed[5, 3, 1], w[11, 96:128])
    x = torch.randn(13, k, generator=g).bfloat16()
    one = torch.cat([native.gemv_bf16(w, x[j : j + 1]) for j in range(13)])
    for m in (1, 2, 3, 5, 8, 9, 10, 13):
        assert torch.equal(pairs.gemm_pairs(packed, x[:m].contiguous()), one[:m]), m
    assert pairs.wanted(2 * 389, k) == pairs.wanted(2, 32)  # one answer for every short-row shape on a build
    assert not pairs.wanted(3, k) and not pairs.wanted(2, 2048) and not pairs.wanted(2, k + 16)


def test_pair_layers_replace_bf16_layers_where_the_kernels_want_them(lib):
    """cpu/pairs.pair: the layers of a bf16 model keep their numbers (a prompt through PyTorch's matmul over the
    weight laid out again, a few rows through the pair kernel, as the row-major kernel gives them), their state dict
    and their shapes; an embedding tied to a head in pairs looks its rows up there; a layer with a bias, or a shape the
    kernels keep row-major, stays."""
    from torch import nn
    from torch.nn import functional as F

    from llm42.cpu import pairs

    g = torch.Generator().manual_seed(5)
    layers = [nn.Linear(64, 96, bias=False), nn.Linear(96, 32, bias=False), nn.Embedding(32, 96), nn.Linear(96, 40)]
    model = nn.Sequential(*layers, nn.Linear(48, 96, bias=False))
    model[1].weight = model[2].weight  # tied, as an output head to its embedding
    with torch.no_grad():
        for m in model:
            m.weight.copy_(torch.randn(m.weight.shape, generator=g))
    model = model.bfloat16()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, ids = torch.randn(60, 64, generator=g).bfloat16(), torch.tensor([[0, 31, 7], [8, 15, 16]])
    y_many, rows = model[0](x), model[2](ids)
    laid = pairs.pair(model)
    assert laid == (2 if pairs.wanted(96, 64) else 0)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(v, before[k]) for k, v in after.items())
    with torch.inference_mode():  # a prompt in the chat's mode first: its buffer then serves a caller outside it
        assert torch.equal(model[0](x), y_many)
    assert torch.equal(model[0](x), y_many)  # PyTorch's matmul over the same weight
    assert torch.equal(model[2](ids), rows)
    assert torch.equal(model[0](x[:5]), native.gemm_bf16(before["0.weight"], x[:5].contiguous()))
    if laid:
        kinds = [pairs.PairLinear, pairs.PairLinear, pairs.PairEmbedding, nn.Linear, nn.Linear]  # 48 inputs: row-major
        assert [type(m) for m in model] == kinds
        assert torch.equal(model[1](model[2](ids)), F.linear(model[2](ids), before["1.weight"]))


def test_panel_layers_replace_bf16_layers_where_the_kernels_want_them(lib):
    """cpu/widen.pack: the layers of a bf16 model on a CPU without bf16 arithmetic keep their numbers (a prompt
    widened through fp32 as before, a few rows through the panel kernel), their state dict and their shapes; an
    embedding tied to a packed head looks its rows up in the panels; a layer with a bias, or rows not in 16s, stays."""
    from torch import nn

    g = torch.Generator().manual_seed(3)
    layers = [nn.Linear(64, 48, bias=False), nn.Linear(48, 32, bias=False), nn.Embedding(32, 48), nn.Linear(48, 40)]
    model = nn.Sequential(*layers)
    model[1].weight = model[2].weight  # tied, as an output head to its embedding
    with torch.no_grad():
        for m in model:
            m.weight.copy_(torch.randn(m.weight.shape, generator=g))
    model = model.bfloat16()
    for i in (0, 1, 3):
        model[i].__class__ = widen.WideLinear
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, ids = torch.randn(60, 64, generator=g).bfloat16(), torch.tensor([[0, 31, 7], [8, 15, 16]])
    y_many, rows = model[0](x), model[2](ids)
    packed = widen.pack(model)
    assert packed == (2 if widen.panel() == 16 else 0)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(v, before[k]) for k, v in after.items())
    assert torch.equal(model[0](x), y_many)  # fp32 widening, the same numbers
    assert torch.equal(model[2](ids), rows)
    few = model[0](x[:5])
    if packed:
        assert [type(m) for m in model] == [
            widen.PanelLinear,
            widen.PanelLinear,
            widen.PanelEmbedding,
            widen.WideLinear,
        ]
        assert torch.equal(few, widen.gemm_bf16p(model[0].panels, x[:5].contiguous()))
    exact = x[:5].float() @ before["0.weight"].float().T
    assert (few.float() - exact).abs().le(exact.abs() * BF16 + accumulation(before["0.weight"], x[:5]) * 2).all()


def test_a_long_prompt_widens_each_weight_a_tile_at_a_time(lib):
    """A prompt of WIDEN_ROWS rows or more multiplies in fp32, the weight widened TILE rows at a time (two whole tiles
    and a part here; from TILED_ROWS rows, whole), row-major with a bias and in panels: each output within fp32's
    rounding of the exact product."""
    from torch import nn

    g = torch.Generator().manual_seed(5)
    n, k = 2 * widen.TILE + 48, 96
    layers = [nn.Linear(k, n, bias=False), nn.Linear(k, n)]
    with torch.no_grad():
        for m in layers:
            m.weight.copy_(torch.randn(n, k, generator=g))
            m.bias is None or m.bias.copy_(torch.randn(n, generator=g))
    model = nn.Sequential(*layers).bfloat16()
    for m in model:
        m.__class__ = widen.WideLinear
    widen.pack(model)  # the first in panels where this CPU's kernels want them; the second keeps its bias, row-major
    for rows in (widen.WIDEN_ROWS + 12, widen.TILED_ROWS + 8):
        x = torch.randn(1, rows, k, generator=g).bfloat16()
        for layer, w, b in ((model[0], layers[0].weight, None), (model[1], model[1].weight, model[1].bias)):
            assert_product(layer(x), x[0], w, b)


def assert_product(got: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> None:
    """`got` [1, m, n] is x @ w^T + b within bf16's and fp32's rounding, contiguous."""
    assert got.shape == (1, x.shape[0], w.shape[0]) and got.is_contiguous()
    exact = x.float() @ w.float().T + (0 if b is None else b.float())
    assert (got[0].float() - exact).abs().le(exact.abs() * BF16 + accumulation(w, x) * 2 + 1e-6).all()


def block_rounding(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x goes into the int8/int4 kernels rounded to int8 per block of 32 (scale max|x|/127): each x moves by at
    most half its block's step, which moves a row's sum by at most sum over blocks of step/2 * sum |w| there."""
    steps = x.float().view(x.shape[0], -1, 32).abs().amax(-1) / 127  # [m, blocks]
    return (steps / 2) @ w.abs().view(w.shape[0], -1, 32).sum(-1).T  # [m, n]


@pytest.mark.parametrize("rows", [1, 3])
def test_int8_matrix_product_rounds_x_per_block_of_32(lib, rows):
    g = torch.Generator().manual_seed(1)
    layer = Int8Linear.from_linear(torch.nn.Linear(2048, 515, bias=False).requires_grad_(False))
    x = (torch.randn(rows, 2048, generator=g) * torch.linspace(0.1, 5, 2048)).bfloat16()  # uneven blocks
    w = layer.dequantize(torch.float32)
    exact = x.float() @ w.T
    got = native.gemm_int8(layer.qweight, layer.scales, x).float()
    assert (got - exact).abs().le(exact.abs() * BF16 + block_rounding(w, x) + accumulation(w, x) * 2 + 1e-6).all()


@pytest.mark.parametrize("rows, group_of", [(1, 2048), (4, 2048), (2, 640)])  # groups of 32, 32 and 128
def test_int4_matrix_product_in_llm42s_layout(lib, rows, group_of):
    g = torch.Generator().manual_seed(2)
    layer = Int4Linear.from_linear(torch.nn.Linear(group_of, 640, bias=False).bfloat16().requires_grad_(False))
    x = (torch.randn(rows, group_of, generator=g) * torch.linspace(0.1, 5, group_of)).bfloat16()
    w = layer.dequantize(torch.float32)
    exact = x.float() @ w.T
    got = native.gemm_int4(layer.qweight, layer.scales, layer.group, x).float()
    assert (got - exact).abs().le(exact.abs() * BF16 + block_rounding(w, x) + accumulation(w, x) * 4 + 1e-5).all()


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_int_several_rows_are_each_row_s_own_bits(lib, kind):
    """A verify pass or a short prompt (several rows of x, four weight rows at a time where the kernel tiles them)
    gives each row the bits of its own one-row product: speculation on a quantized model changes no token. 66 weight
    rows: 16 tiles of four and two alone; 23 blocks of 32 inputs (an odd last one; for int4 on AVX512 sixteen blocks
    folded, then a quad, then three alone)."""
    g = torch.Generator().manual_seed(4)
    linear = torch.nn.Linear(736, 128, bias=False).bfloat16().requires_grad_(False)
    if kind == "int8":
        q = Int8Linear.from_linear(linear)
        q = Int8Linear(q.qweight[:66].contiguous(), q.scales[:66].contiguous())
        mm = lambda x: native.gemm_int8(q.qweight, q.scales, x)
    else:
        q = Int4Linear.from_linear(linear)
        q = Int4Linear(q.qweight[:66].contiguous(), q.scales[:66].contiguous(), q.group, None)
        mm = lambda x: native.gemm_int4(q.qweight, q.scales, q.group, x)
    x = (torch.randn(31, 736, generator=g) * torch.linspace(0.1, 5, 736)).bfloat16()
    one = torch.cat([mm(x[j : j + 1]) for j in range(31)])
    for m in (2, 5, 9, 31):
        assert torch.equal(mm(x[:m].contiguous()), one[:m]), m


@pytest.mark.parametrize("group, k", [(64, 64 * 23), (128, 128 * 11)])
def test_int4_groups_of_64_and_128(lib, group, k):
    """A saved folder may hold wider groups: each kernel path spreads one group's scale over its blocks (46 blocks
    of 32 for groups of 64: two sixteens, three quads, two alone; 44 for groups of 128)."""
    g = torch.Generator().manual_seed(5)
    n = 70
    codes = torch.randint(0, 16, (n, k), generator=g, dtype=torch.uint8)
    d = torch.rand(n, generator=g) * 1e-4 + 1e-5
    s = torch.randint(1, 256, (n, k // group), generator=g)
    z = torch.randint(-128, 128, (n, k // group), generator=g)
    layer = Int4Linear(pack_int4(codes), pack_scales(d, s, z), group)
    w = layer.dequantize(torch.float32)
    x = (torch.randn(9, k, generator=g) * torch.linspace(0.1, 5, k)).bfloat16()
    exact = x.float() @ w.T
    got = native.gemm_int4(layer.qweight, layer.scales, group, x)
    bound = exact.abs() * BF16 + block_rounding(w, x) + accumulation(w, x) * 4 + 1e-5
    assert (got.float() - exact).abs().le(bound).all()
    one = torch.cat([native.gemm_int4(layer.qweight, layer.scales, group, x[j : j + 1]) for j in range(9)])
    assert torch.equal(got, one)


@pytest.mark.parametrize("heads, kv_heads, n", [(32, 32, 1), (32, 32, 300), (9, 3, 77)])
def test_attention_for_one_query(lib, heads, kv_heads, n):
    g = torch.Generator().manual_seed(3)
    keys = torch.randn(kv_heads, 512, 64, generator=g).bfloat16()  # capacity 512, the first n filled
    values = torch.randn(kv_heads, 512, 64, generator=g).bfloat16()
    q = torch.randn(heads, 64, generator=g).bfloat16()
    k, v = (
        keys[:, :n].float().repeat_interleave(heads // kv_heads, 0),
        values[:, :n].float().repeat_interleave(heads // kv_heads, 0),
    )
    probs = torch.softmax((q.float()[:, None] @ k.transpose(1, 2)) * 0.125, dim=-1)
    exact = (probs @ v).view(1, -1)
    got = native.attend(q, keys, values, n, 0.125).float()
    # bf16 output rounding, plus the exp approximation (2e-7 relative) and fp32 sums over n, all below 1e-4
    assert (got - exact).abs().le(exact.abs() * BF16 + 1e-4 * v.abs().max()).all()


@pytest.mark.parametrize("d", [64, 48])  # llm42's AVX512 path where it is built, and the plain one
def test_attention_for_several_rows_is_each_row_s_own_bits(lib, d):
    """A verify pass attends all its rows in one call: row j sees the cache and rows 0..j, the same bits as one
    query at that position (so speculation keeps plain decoding's tokens)."""
    g = torch.Generator().manual_seed(4)
    keys = torch.randn(3, 512, d, generator=g).bfloat16()
    values = torch.randn(3, 512, d, generator=g).bfloat16()
    for n0, m in ((0, 1), (40, 5), (300, 9)):
        q = torch.randn(m, 9, d, generator=g).bfloat16()
        got = native.attend_rows(q, keys, values, n0, 0.125)
        assert torch.equal(got, torch.cat([native.attend(q[j], keys, values, n0 + j + 1, 0.125) for j in range(m)]))


def test_products_in_one_call_are_each_kind_s_own(lib):
    """The roofline times llm42's products as a step runs them, one after another in one call (llm42_products): each
    kind read from its spec (bf16, int8, int4 with its group) gives its own kernel's bits, and a list of them ends in
    the last one's."""
    g = torch.Generator().manual_seed(7)
    w = torch.randn(192, 576, generator=g)
    q8, q4 = Int8Linear.from_linear(torch.nn.Linear(576, 192, bias=False)), Int4Linear.from_weight(w, 32)
    w = w.bfloat16()
    specs = {
        "bf16": ([native.BF16, w.data_ptr(), 0, 0], lambda x: native.gemm_bf16(w, x)),
        "int8": ([native.INT8, q8.qweight.data_ptr(), q8.scales.data_ptr(), 0], q8.product(True)),
        "int4": ([native.INT4, q4.qweight.data_ptr(), q4.scales.data_ptr(), 32], q4.product(True)),
    }

    def products(rows: list[list[int]], x: torch.Tensor) -> torch.Tensor:
        spec, y = torch.tensor(rows), torch.empty(len(x), 192, dtype=torch.bfloat16)
        lib.llm42_products(spec.data_ptr(), len(spec), x.data_ptr(), y.data_ptr(), len(x), 192, 576)
        return y

    for m in (1, 3):
        x = torch.randn(m, 576, generator=g).bfloat16()
        for row, own in specs.values():
            assert torch.equal(products([row], x), own(x))
        assert torch.equal(products([row for row, _ in specs.values()], x), specs["int4"][1](x))


def test_the_steps_between_matmuls_round_as_pytorch_does(lib):
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(1, 2048, generator=g).bfloat16(), torch.randn(2048, generator=g).bfloat16()
    h = x.float()
    expected = w * (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16)  # LlamaRMSNorm
    got = native.rmsnorm(x, w, 1e-6)
    # the same operations; the mean's summation order may differ in the last fp32 bit: one bf16 step at most
    assert (got.float() - expected.float()).abs().le(expected.float().abs() * BF16 * 2).all()
    q = torch.randn(32, 64, generator=g).bfloat16()
    cos, sin = torch.randn(64, generator=g).bfloat16(), torch.randn(64, generator=g).bfloat16()
    rotated = q * cos + torch.cat((-q[:, 32:], q[:, :32]), dim=-1) * sin  # transformers' apply_rotary_pos_emb
    assert torch.equal(native.rope_(q.clone(), cos, sin), rotated)
    y = torch.randn(1, 2048, generator=g).bfloat16()
    assert torch.equal(native.add_(x.clone(), y), x + y)
    gate, up = torch.randn(1, 5632, generator=g).bfloat16(), torch.randn(1, 5632, generator=g).bfloat16()
    expected = torch.nn.functional.silu(gate) * up
    got = native.silu_mul_(gate.clone(), up)
    assert (got.float() - expected.float()).abs().le(expected.float().abs() * BF16 * 2).all()


def test_without_a_compiler_pytorch_runs(monkeypatch, tmp_path):
    """No compiler (or LLM42_NATIVE=0): the library is None and every path falls back to PyTorch."""
    import importlib

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("LLM42_CACHE", str(tmp_path / "cache"))
    fresh = importlib.reload(native)
    try:
        assert shutil.which("cc") is None and fresh.library() is None
    finally:
        monkeypatch.undo()
        importlib.reload(native)
        native.library()  # as it was for the other tests


def test_prefill_dequantization_equals_pytorchs_to_the_bit(lib):
    layer = torch.nn.Linear(2048, 640, bias=False).bfloat16().requires_grad_(False)
    q8 = Int8Linear.from_linear(layer)
    assert torch.equal(native.dequant_int8(q8.qweight, q8.scales), q8.qweight.to(torch.bfloat16) * q8.scales[:, None])
    q4 = Int4Linear.from_linear(layer)
    n, k, g = 640, 2048, q4.group
    q = unpack_int4(q4.qweight).reshape(n, k // g, g).float()
    scale, zero = q4.unpacked()  # fp32: (q - 8 + z / 16) * (d * s), rounded to bf16 once
    want = ((q - 8 + zero[..., None]) * scale[..., None]).reshape(n, k).bfloat16()
    assert torch.equal(native.dequant_int4(q4.qweight, q4.scales, g), want)


def test_int4_layout_is_llm42s_own_on_every_cpu():
    """Packing is plain tensor arithmetic, no PyTorch kernel: the same bytes whatever CPU PyTorch was built for.
    Input j of a block of 32 sits in byte j's low nibble, input 16 + j in its high nibble."""
    q = torch.tensor([list(range(16)) + [15 - j for j in range(16)]])  # one block: 0..15, then 15..0
    assert torch.equal(pack_int4(q), torch.tensor([[j | (15 - j) << 4 for j in range(16)]], dtype=torch.uint8))
    codes = torch.randint(0, 16, (64, 256), generator=torch.Generator().manual_seed(5))
    assert torch.equal(unpack_int4(pack_int4(codes)).long(), codes)


def test_pytorchs_int4_kernel_on_its_own_packing_agrees_with_llm42s_codes():
    """Without llm42's kernels, PyTorch's int4 kernel runs on a packing made from the same codes, for whatever
    CPU capability PyTorch runs with (its AVX2 and AVX512 packings differ): exact x, fp32 sums, bf16 output. Its
    scale and zero per group are bf16 (PyTorch's format), so its weights are llm42's within bf16's rounding of them."""
    g = torch.Generator().manual_seed(6)
    layer = Int4Linear.from_linear(torch.nn.Linear(512, 192, bias=False).bfloat16().requires_grad_(False))
    x = torch.randn(5, 512, generator=g).bfloat16()
    packed, sz = layer.torch_packed()
    scale, zero = sz.float().transpose(0, 1).unsqueeze(-1).unbind(-2)  # [out, groups, 1] each, as PyTorch reads them
    q = unpack_int4(layer.qweight).reshape(192, -1, layer.group).float()
    w = ((q - 8) * scale + zero).reshape(192, 512)  # what PyTorch's kernel multiplies by
    exact = x.float() @ w.T
    got = torch._weight_int4pack_mm_for_cpu(x, packed, layer.group, sz).float()
    assert (got - exact).abs().le(exact.abs() * BF16 * 2 + accumulation(w, x) * 4 + 1e-4).all()
    ours = layer.dequantize(torch.float32)
    assert (w - ours).abs().le(((q - 8).abs() * scale.abs() + zero.abs()).reshape(192, 512) * 2**-8).all()


def probe_library(tmp_path, **env) -> str:
    """In a fresh process (the library is loaded once per process): what native.library() made of this cache."""
    import subprocess
    import sys

    from tests.support.cli import ROOT, cli_env

    code = "from llm42.cpu import native; print(native.library() is not None, native.describe(), sep='|')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=cli_env(LLM42_CACHE=str(tmp_path / "cache"), **env),
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    "script",
    [
        'out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; '
        'done; cc -shared -fPIC -x c /dev/null -o "$out"',
        "exit 0",  # says it succeeded, wrote nothing
    ],
)
def test_a_compiler_that_writes_no_kernels_leaves_pytorchs(lib, tmp_path, script):
    cc = tmp_path / "cc"
    cc.write_text("#!/bin/sh\n" + script + "\n")
    cc.chmod(0o755)
    assert probe_library(tmp_path, CC=str(cc)) == f"False|{cc} could not build llm42's C kernels: PyTorch's kernels run"


def test_a_damaged_library_in_the_cache_is_built_again(lib, tmp_path):
    assert probe_library(tmp_path).startswith("True|")
    (so,) = (tmp_path / "cache" / "native").glob("*.so")
    so.write_bytes(so.read_bytes()[:4096])  # truncated: mapped as it is, it would die of SIGBUS
    assert probe_library(tmp_path).startswith("True|") and so.stat().st_size > 4096
