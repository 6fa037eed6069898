"""The load plan on given machines and settings: device, dtype, window, quantization, the notes it says; no model."""

import pytest
import torch

from llm42.errors import UsageError
from llm42.model.device import Machine
from llm42.model.plan import Decode, plan
from llm42.settings import ModelSettings
from tests.test_device import CFG_42DOT, GB, gpu

LAPTOP = Machine(cpu_available=16 * GB, cpu_bf16=False)
SMALL = Machine(cpu_available=int(3.6 * GB), cpu_bf16=True)  # the bf16 model with a full window does not fit
GPU_BOX = Machine(cpu_available=64 * GB, cpu_bf16=True, gpus=[gpu(0, 40)])


def test_the_default_plan_on_a_gpu_captures_a_graph_and_keeps_the_window():
    p = plan(ModelSettings(), 512, CFG_42DOT, None, GPU_BOX)
    assert (p.device, p.dtype, p.window, p.kind, p.notes) == ("cuda:0", torch.bfloat16, 4096, "none", [])
    assert (p.decode, p.speculate) == (Decode.GRAPH, False)


def test_quantized_weights_go_to_the_cpu_in_bf16_and_flags_without_effect_are_named():
    p = plan(ModelSettings(quantize="int4", dtype="float32"), 512, CFG_42DOT, None, GPU_BOX)
    assert (p.device, p.dtype, p.kind, p.quantize, p.decode) == ("cpu", torch.bfloat16, "int4", "int4", Decode.STEP)
    assert p.notes == ["--dtype float32 has no effect on int4 weights (their activations are bf16)"]
    saved = plan(ModelSettings(path="P", quantize="int8"), 512, CFG_42DOT, "int4", LAPTOP)
    assert (saved.kind, saved.quantize) == ("int4", "none")
    assert saved.notes == ["--quantize int8 has no effect: P holds int4 weights already"]
    with pytest.raises(UsageError, match="cuda"):
        plan(ModelSettings(quantize="int8", device="cuda"), 512, CFG_42DOT, None, GPU_BOX)


def test_the_window_shrinks_to_fit_the_ram_and_the_reply_must_leave_room_for_a_prompt():
    p = plan(ModelSettings(device="cpu"), 512, CFG_42DOT, None, SMALL)
    assert 512 < p.window < 4096
    capped = plan(ModelSettings(context=9000), 512, CFG_42DOT, None, LAPTOP)
    assert capped.window == 4096 and capped.notes == [
        "--context 9000 is more than this model's 4096-token window: using 4096"
    ]
    with pytest.raises(UsageError, match="512"):
        plan(ModelSettings(context=512), 512, CFG_42DOT, None, LAPTOP)


def test_a_default_reply_too_long_for_the_window_is_halved_and_said():
    p = plan(ModelSettings(context=256), 512, CFG_42DOT, None, LAPTOP, fit_reply=True)
    assert p.window == 256 and p.max_new_tokens == 128
    assert p.notes == [
        "replies up to 128 tokens: half the 256-token context window (--context 256); --max-new-tokens N to choose"
    ]
    assert plan(ModelSettings(context=1024), 512, CFG_42DOT, None, LAPTOP, fit_reply=True).max_new_tokens == 512
    with pytest.raises(
        UsageError, match=r"--max-new-tokens 512 must be below the 512-token context window \(--context"
    ):
        plan(ModelSettings(context=512), 512, CFG_42DOT, None, LAPTOP)


def test_the_decode_path_is_llm42s_step_for_a_plain_llama_on_the_cpu_and_transformers_forward_otherwise():
    cpu = plan(ModelSettings(device="cpu"), 512, CFG_42DOT, None, LAPTOP)
    assert (cpu.decode, cpu.speculate) == (Decode.STEP, True)
    assert not plan(ModelSettings(device="cpu", speculate="off"), 512, CFG_42DOT, None, LAPTOP).speculate
    biased = CFG_42DOT.to_dict() | {"attention_bias": True}
    other = plan(ModelSettings(device="cpu"), 512, type(CFG_42DOT)(**biased), None, LAPTOP)
    assert (other.decode, other.speculate) == (Decode.FORWARD, False)
