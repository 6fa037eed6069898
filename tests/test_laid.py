"""bf16 weights laid out for llm42's kernels at load time (cpu/laid.py): the AVX2 panels (cpu/widen.py) and the
AVX512-BF16 pairs (cpu/pairs.py), each row the bits of its row-major product, the layers' numbers and state dicts kept,
and a long prompt widened a tile at a time."""

import pytest
import torch

from llm42.cpu import native, widen
from tests.support.rounding import BF16, accumulation


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
