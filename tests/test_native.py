"""llm42's C kernels for decode steps, against exact fp32 arithmetic, with bounds from the rounding they do."""

import shutil

import pytest
import torch

from llm42.cpu import native
from llm42.cpu.layers import Int4Linear, Int8Linear, pack_int4, pack_scales, unpack_int4
from tests.support.rounding import BF16, accumulation


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


# llm42's AVX512 path where it is built (d a multiple of 32; a verify's queries in batches per key head, the values
# widened once per batch), and the plain one; heads in GQA groups of three (SmolLM2) and one each (42dot)
@pytest.mark.parametrize("d, heads, kv_heads", [(64, 9, 3), (48, 9, 3), (128, 4, 4), (32, 5, 5)])
def test_attention_for_several_rows_is_each_row_s_own_bits(lib, d, heads, kv_heads):
    """A verify pass attends all its rows in one call: row j sees the cache and rows 0..j, the same bits as one
    query at that position (so speculation keeps plain decoding's tokens)."""
    g = torch.Generator().manual_seed(4)
    keys = torch.randn(kv_heads, 512, d, generator=g).bfloat16()
    values = torch.randn(kv_heads, 512, d, generator=g).bfloat16()
    for n0, m in ((0, 1), (0, 2), (40, 5), (300, 9), (77, 13)):
        q = torch.randn(m, heads, d, generator=g).bfloat16()
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
