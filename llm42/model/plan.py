"""Loading as a plan: from the settings, the model's config and the machine, decide device, dtype, context window,
quantization and decode path before anything heavy happens. Pure: tested like device.choose."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import torch

from ..i18n import t
from ..settings import ModelSettings, UsageError, reply_fits
from .device import SHORT, Machine, choose, estimate_bytes, gib

WEIGHT_BYTES = {"int8": 1.05, "int4": 0.57}  # bytes per weight, scales included


class Decode(str, Enum):
    """How a reply's tokens are computed after the prompt. Decided here, once (`decode_path`)."""

    STEP = "llm42's decode step"  # llm42's own step over growing KV buffers (the CPU); speculation can verify drafts
    GRAPH = "llm42's decode step, as a CUDA graph"  # the same step at fixed shapes, captured where CUDA runs it
    FORWARD = "transformers' forward"  # any other model: the model's own forward for every token


def decode_path(config, device: str) -> Decode:
    """llm42's own step for Llama and its exact relatives (42dot LLM-SFT, SmolLM2: SiLU MLP, no biases, plain or
    scaled RoPE) on the CPU (a CUDA graph on a GPU); transformers' forward for everything else."""
    llama = (
        getattr(config, "model_type", "") == "llama"
        and getattr(config, "hidden_act", "") == "silu"
        and not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False)
        and getattr(config, "pretraining_tp", 1) == 1
    )
    if not llama or not device.startswith(("cpu", "cuda")):
        return Decode.FORWARD
    return Decode.GRAPH if device.startswith("cuda") else Decode.STEP


@dataclass
class LoadPlan:
    device: str
    dtype: torch.dtype
    window: int  # context window in tokens
    kind: str  # the weights' kind: "none", "int8", "int4"
    quantize: str  # what loading does to the weights: "none" when they come quantized (a saved folder)
    reason: str  # why this device and dtype, for the device line
    decode: Decode  # llm42's step, as a CUDA graph or not, or transformers' forward
    speculate: bool = False  # draft from the conversation and verify several tokens per pass (llm42's step)
    notes: list[str] = field(default_factory=list)  # flags that have no effect, a context capped, a reply fitted
    max_new_tokens: int = 512  # the longest reply: as asked, or fitted to a window too small for the default

    @property
    def line(self) -> str:
        kind = self.kind if self.kind != "none" else SHORT[self.dtype]
        return t("device_line", device=self.device, kind=kind, reason=self.reason)


def window_of(config) -> int:
    return int(getattr(config, "max_position_embeddings", None) or 2048)


def plan(
    m: ModelSettings, max_new_tokens: int, config, saved: str | None, machine: Machine, fit_reply: bool = False
) -> LoadPlan:
    """The plan for model settings `m`; `saved` is the kind of a saved quantized folder (None if not one).
    `fit_reply`: the longest reply was not asked for, so a window too small for it halves it instead (said).
    UsageError for what cannot work (a reply asked as long as the window, quantized weights on a GPU)."""
    notes = []
    window = min(window_of(config), m.context or 1 << 30)
    if m.context and m.context > window:
        notes.append(t("context_capped", asked=m.context, most=window))
    max_new_tokens = _reply_room(max_new_tokens, window, fit_reply, m.context == window, notes)
    if saved and m.quantize not in ("none", saved):
        notes.append(t("no_effect_quantize", asked=m.quantize, path=m.name, kind=saved))
    kind = saved or m.quantize
    if kind != "none" and m.dtype not in ("auto", "bfloat16"):
        notes.append(t("no_effect_dtype", dtype=m.dtype, kind=kind))
    need = lambda dt, tokens: estimate_bytes(config, dt, tokens, WEIGHT_BYTES.get(kind))
    choice = choose("cpu" if kind != "none" and m.device == "auto" else m.device, m.dtype, machine, need, window)
    if kind != "none" and choice.device != "cpu":
        raise UsageError(t("quantize_cpu_only", device=choice.device))
    if kind != "none":  # quantized layers take bf16 activations
        choice.dtype, choice.reason = torch.bfloat16, t("quantized_reason", kind=kind, ram=gib(machine.cpu_available))
    window = choice.window or window
    max_new_tokens = _reply_room(max_new_tokens, window, fit_reply, m.context == window, notes)
    decode = decode_path(config, choice.device)
    return LoadPlan(
        choice.device,
        choice.dtype,
        window,
        kind,
        "none" if saved else m.quantize,
        choice.reason,
        decode=decode,
        speculate=m.speculate == "auto" and decode is Decode.STEP,
        notes=notes,
        max_new_tokens=max_new_tokens,
    )


def _reply_room(max_new_tokens: int, window: int, fit: bool, asked: bool, notes: list[str]) -> int:
    """The longest reply for this window: as given if it leaves room for a prompt, else half the window where it
    was not asked for (a note says so), else a UsageError naming the flags. `asked`: the window is --context's."""
    if reply_fits(max_new_tokens, window):
        return max_new_tokens
    whose = f"--context {window}" if asked else t("models_window")
    if not fit:
        raise UsageError(t("max_new_window", n=max_new_tokens, window=window, whose=whose))
    notes.append(t("reply_fitted", n=window // 2, window=window, whose=whose))
    return window // 2
