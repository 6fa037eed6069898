"""int8/int4 quantization on real weights: close to bf16, and saved models load back exactly."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from llm42.cpu.layers import Int4Linear, Int8Linear
from llm42.cpu.memory import mapping_of
from llm42.model.quantize import quantize_checkpoint, quantize_model
from llm42.model.saved import load_quantized, save_quantized
from tests.support.cli import run_cli
from tests.support.models import int4_step

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def logits(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids).logits[0].float()


@pytest.fixture(scope="module")
def bf16(smollm2):
    return AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.bfloat16).eval()


@pytest.fixture(scope="module")
def ids(smollm2_loaded):
    return torch.tensor([smollm2_loaded[1].encode(PROMPT + "The capital of France is Paris. It is known for")])


def weight_noise(model, reference) -> float:
    """Sum over the quantized layers of ||W_q - W||^2 / ||W||^2, from the weights alone (dequantized in fp32:
    no kernel involved), after checking that no weight moved by more than half its quantization step
    (rounding to nearest) plus what the scale's bf16 rounding (2^-9 relative) adds at the largest code."""
    total = 0.0
    for name, layer in model.named_modules():
        if isinstance(layer, (Int8Linear, Int4Linear)):
            w = reference.get_submodule(name).weight.detach().float()
            err = layer.dequantize(torch.float32) - w
            if isinstance(layer, Int8Linear):  # w = q * scale, |q| <= 127, one scale per output channel
                step = w.abs().amax(dim=1, keepdim=True) / 127
                stored = 127 * step  # the largest |q * scale|: what the scale's rounding is relative to
            else:  # w = (q - 8 + z / 16) * scale per group, the scale a whole number of the row's unit d
                step = int4_step(w, layer.group)
                stored = step * 16  # the largest |(q - 8 + z / 16) * scale|: its fp32 rounding is relative to it
            # rounding to nearest moves a weight by at most half a step; int8's scale, kept in bf16, adds at most
            # 2^-9 of what it contributes (2^-8 here, for the fp32 arithmetic that made it), int4's fp32 arithmetic less
            assert (err.abs() <= step / 2 + stored * 2**-8).all(), name
            total += float(err.pow(2).sum() / w.pow(2).sum())
    return total


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_quantized_logits_stay_within_what_rounding_the_weights_can_cause(smollm2, smollm2_loaded, bf16, ids, kind):
    """How far may the logits move? Rounding error is independent of the weights, so each layer adds noise of
    relative power ||dW||^2/||W||^2 and the powers add up along the residual stream: the logits' expected
    relative error is sqrt(sum), from the weights alone. The bound is twice that (one position may be worse
    than the average: on SmolLM2 the worst of 27 was 1.25x for int8, 1.6x for int4), plus twice the bf16
    model's own error against fp32 on this CPU, since both sides of the comparison round activations to bf16
    (with kernels that differ between CPUs: this term is measured here, never copied from another machine)."""
    fp32 = smollm2_loaded[0]
    q = quantize_model(AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.bfloat16).eval(), kind)
    assert not any(type(m) is torch.nn.Linear for m in q.modules())
    expected = weight_noise(q, bf16) ** 0.5  # q was made from these bf16 weights
    ref, got, exact = logits(bf16, ids), logits(q, ids), logits(fp32, ids)
    bf16_noise = float(((ref - exact).norm(dim=-1) / exact.norm(dim=-1)).max())
    error = (got - ref).norm(dim=-1) / ref.norm(dim=-1)  # per position
    assert 0.001 < expected < 0.3  # the noise model's own sanity: int weights are not exact, nor far off
    assert float(error.max()) <= 2 * expected + 2 * bf16_noise, (float(error.max()), expected, bf16_noise)


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_layer_by_layer_from_file_equals_in_memory_and_saved_reloads_exactly(smollm2, ids, kind, tmp_path):
    # both start from the checkpoint's fp32 weights; the layers left unquantized end in bf16
    in_memory = quantize_model(AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval(), kind)
    streamed = quantize_checkpoint(smollm2, kind)  # each weight read from the file's mapping
    assert not [n for n, t in streamed.state_dict().items() if mapping_of(t)]
    a, b = in_memory.state_dict(), streamed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k].to(b[k].dtype), b[k]) for k in a)
    save_quantized(streamed, __import__("transformers").AutoTokenizer.from_pretrained(smollm2), tmp_path / kind)
    loaded = load_quantized(tmp_path / kind)  # read from the saved file's mapping, then copied out of it
    assert not [n for n, t in loaded.state_dict().items() if mapping_of(t)]
    assert torch.equal(logits(loaded, ids), logits(streamed, ids))


def test_cli_quantizes_saves_and_restarts_from_the_saved_model(smollm2, tmp_path):
    out = tmp_path / "smol-int4"
    r = run_cli(
        "--model-path",
        str(smollm2),
        "--quantize",
        "int4",
        "--save-quantized",
        str(out),
        "--temperature",
        "0",
        "--max-new-tokens",
        "20",
        "--prompt",
        "What is the capital of France?",
    )
    assert r.returncode == 0, r.stderr.decode()
    # a reply (what int4 SmolLM2 says depends on the CPU class's rounding), and then the same one from the saved folder
    assert r.stdout.strip() and f"--model-path {out}" in r.stderr.decode()
    again = run_cli(
        "--model-path",
        str(out),
        "--temperature",
        "0",
        "--max-new-tokens",
        "20",
        "--prompt",
        "What is the capital of France?",
    )
    assert again.returncode == 0 and again.stdout == r.stdout
    assert "device cpu, int4" in again.stderr.decode()


def test_save_quantized_without_quantize_is_refused(smollm2, tmp_path):
    r = run_cli("--model-path", str(smollm2), "--save-quantized", str(tmp_path / "x"), "--prompt", "hi")
    assert r.returncode == 2 and "--save-quantized needs --quantize" in r.stderr.decode()


def test_int4_prefill_and_step_paths_agree():
    """Prefill (>= prefill_rows() rows: the weight dequantized, bf16 matmul) and a step (a few rows through the
    int4 kernel, x rounded per block of 32 where llm42's kernel runs) compute one product: they differ by the
    rounding each does, bounded from the weights and x as in test_native."""
    from llm42.cpu.layers import prefill_rows

    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 192, bias=False).to(torch.bfloat16).requires_grad_(False)
    q = Int4Linear.from_linear(layer)
    x = torch.randn(prefill_rows(), 256, dtype=torch.bfloat16)
    w = q.dequantize(torch.float32)
    exact = x.float() @ w.T
    steps = x.float().view(x.shape[0], -1, 32).abs().amax(-1) / 127
    magnitude = x.float().abs() @ w.abs().T
    rounded = (q.dequantize().float() - w).abs()  # what dequantizing to bf16 moved each weight by (bit-exact maths)
    # the output's bf16 rounding, the weights' bf16 rounding (prefill) or x's (the kernel), fp32 sums
    bound = (
        exact.abs() * 2**-8
        + x.float().abs() @ rounded.T
        + (steps / 2) @ w.abs().view(192, -1, 32).sum(-1).T
        + magnitude * 256 * 2**-24 * 2
    )
    assert ((q(x).float() - exact).abs() <= bound).all()  # dequantized path
    assert ((q(x[:3]).float() - exact[:3]).abs() <= bound[:3]).all()  # the kernel's path
    # a group's step is (max - min) / 15 <= 2 max|w| / 15: rounding is off by half a step, plus bf16 scales
    assert torch.allclose(q.dequantize().float(), layer.weight.float(), atol=float(layer.weight.abs().max()) / 12)
