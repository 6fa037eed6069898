"""int8/int4 quantization on real weights: close to bf16, and saved models load back exactly."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from cli_helpers import run_cli
from llm42.quantize import (Int4Linear, Int8Linear, _layout_ok, load_quantized, quantize_checkpoint, quantize_model,
                            save_quantized)

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


@pytest.mark.parametrize("kind, min_cos, min_top1", [("int8", 0.99, 0.9), ("int4", 0.98, 0.85)])
def test_quantized_logits_stay_close_to_bf16(smollm2, bf16, ids, kind, min_cos, min_top1):
    q = quantize_model(AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.bfloat16).eval(), kind)
    assert not any(type(m) is torch.nn.Linear for m in q.modules())
    assert any(isinstance(m, (Int8Linear, Int4Linear)) for m in q.modules())
    ref, got = logits(bf16, ids), logits(q, ids)  # a whole prompt: the prefill path (dequantized bf16 matmul)
    cos = torch.nn.functional.cosine_similarity(ref, got, dim=-1)
    assert cos.min() > min_cos
    assert (ref.argmax(-1) == got.argmax(-1)).float().mean() > min_top1
    with torch.inference_mode():  # one token at a time: the decode path (int8/int4 kernels)
        steps = torch.cat([q(input_ids=ids[:, : i + 1]).logits[0, -1:].float() for i in range(ids.shape[1] - 4, ids.shape[1])])
    assert torch.nn.functional.cosine_similarity(steps, got[-4:], dim=-1).min() > 0.99


@pytest.mark.parametrize("kind", ["int8", "int4"])
def test_layer_by_layer_from_file_equals_in_memory_and_saved_reloads_exactly(smollm2, ids, kind, tmp_path):
    # both start from the checkpoint's fp32 weights; the layers left unquantized end in bf16
    in_memory = quantize_model(AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval(), kind)
    streamed = quantize_checkpoint(smollm2, kind)
    a, b = in_memory.state_dict(), streamed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k].to(b[k].dtype), b[k]) for k in a)
    save_quantized(streamed, __import__("transformers").AutoTokenizer.from_pretrained(smollm2), tmp_path / kind)
    assert torch.equal(logits(load_quantized(tmp_path / kind), ids), logits(streamed, ids))


def test_cli_quantizes_saves_and_restarts_from_the_saved_model(smollm2, tmp_path):
    out = tmp_path / "smol-int4"
    r = run_cli("--model-path", str(smollm2), "--quantize", "int4", "--save-quantized", str(out), "--temperature", "0",
                "--max-new-tokens", "20", "--prompt", "What is the capital of France?")
    assert r.returncode == 0, r.stderr.decode()
    assert "Paris" in r.stdout.decode() and f"--model-path {out}" in r.stderr.decode()
    again = run_cli("--model-path", str(out), "--temperature", "0", "--max-new-tokens", "20",
                    "--prompt", "What is the capital of France?")
    assert again.returncode == 0 and again.stdout == r.stdout
    assert "device cpu, int4" in again.stderr.decode()


def test_save_quantized_without_quantize_is_refused(smollm2, tmp_path):
    r = run_cli("--model-path", str(smollm2), "--save-quantized", str(tmp_path / "x"), "--prompt", "hi")
    assert r.returncode == 2 and "--save-quantized needs --quantize" in r.stderr.decode()


def test_int4_unpacking_reads_pytorchs_layout():
    assert _layout_ok()  # else prefill falls back to the int4 kernel: slower, still correct
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 192, bias=False).to(torch.bfloat16).requires_grad_(False)
    q = Int4Linear.from_linear(layer)
    x = torch.randn(130, 256, dtype=torch.bfloat16)  # >= PREFILL_ROWS: dequantized path
    kernel = torch._weight_int4pack_mm_for_cpu(x, q.packed, q.group, q.scales_zeros)
    assert torch.allclose(q(x).float(), kernel.float(), atol=0.05, rtol=0.02)
    # a group's step is (max - min) / 15 <= 2 max|w| / 15: rounding is off by half a step, plus bf16 scales
    assert torch.allclose(q.dequantize().float(), layer.weight.float(), atol=float(layer.weight.abs().max()) / 12)
