"""llm42's own Llama: the module tree of transformers' LlamaForCausalLM (the same names and state dict, so quantizing,
saving and the decode step see no difference), read from config.json and safetensors without importing transformers
(its modelling code and auto classes are ~4 s of a start on two cores), and a prefill written op for op as
transformers' forward computes it with its SDPA attention, writing into llm42's KVCache. Llama and its exact
relatives only (`fits`); every other model loads through transformers."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

from .checkpoint import Checkpoint

REQUIRED = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "vocab_size")
DEFAULTS = {  # LlamaConfig's defaults for what a config.json may leave out
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 2048,
    "attention_bias": False,
    "mlp_bias": False,
    "pretraining_tp": 1,
    "tie_word_embeddings": False,
    "rope_theta": 10000.0,
    "pad_token_id": None,
}


class Config:
    """config.json's values as attributes, under transformers' names."""

    def __init__(self, values: dict):
        self.__dict__.update({**DEFAULTS, **values})
        self.num_key_value_heads = values.get("num_key_value_heads") or self.num_attention_heads
        self.head_dim = values.get("head_dim") or self.hidden_size // self.num_attention_heads
        rope = values.get("rope_parameters") or {}
        self.rope_theta = float(rope.get("rope_theta", self.rope_theta))

    @classmethod
    def read(cls, folder: str | Path) -> Config | None:
        """The folder's config if llm42's Llama can run it, else None (transformers loads it)."""
        try:
            values = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return cls(values) if isinstance(values, dict) and _fits(values) else None

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def save_pretrained(self, folder: str | Path) -> None:
        (Path(folder) / "config.json").write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def _fits(c: dict) -> bool:
    rope = c.get("rope_parameters") or {}
    return (
        c.get("model_type") == "llama"
        and all(isinstance(c.get(k), int) for k in REQUIRED)
        and c.get("hidden_act", "silu") == "silu"
        and not c.get("attention_bias")
        and not c.get("mlp_bias")
        and c.get("pretraining_tp", 1) == 1
        and not c.get("rope_scaling")
        and rope.get("rope_type", "default") == "default"
        and not c.get("auto_map")
        and not c.get("quantization_config")
    )


class GenerationConfig:
    """generation_config.json's values as attributes; None for what it does not set."""

    def __init__(self, values: dict | None = None):
        self.__dict__.update(values or {})

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    @classmethod
    def read(cls, folder: str | Path) -> GenerationConfig:
        try:
            values = json.loads((Path(folder) / "generation_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            values = None
        return cls(values if isinstance(values, dict) else None)

    def save_pretrained(self, folder: str | Path) -> None:
        text = json.dumps(self.__dict__, indent=2) + "\n"
        (Path(folder) / "generation_config.json").write_text(text, encoding="utf-8")


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(x.dtype)


class Rotary(nn.Module):
    """Plain RoPE: (x, positions [1, n]) -> cos, sin [1, n, head_dim] in x's dtype, computed in fp32."""

    def __init__(self, config: Config):
        super().__init__()
        d = config.head_dim
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float) / d))
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        d, heads, kv_heads = c.head_dim, c.num_attention_heads, c.num_key_value_heads
        self.head_dim, self.groups, self.scaling = d, heads // kv_heads, d**-0.5
        self.q_proj = nn.Linear(c.hidden_size, heads * d, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, kv_heads * d, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, kv_heads * d, bias=False)
        self.o_proj = nn.Linear(heads * d, c.hidden_size, bias=False)


class MLP(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = MLP(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class Body(nn.Module):
    def __init__(self, c: Config, rotary: bool = True):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size, c.pad_token_id)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.rotary_emb = Rotary(c) if rotary else None


class Llama(nn.Module):
    """What llm42 uses of a LlamaForCausalLM: its modules, config, generation_config, device and dtype; `prefill`."""

    def __init__(self, config: Config, rotary: bool = True):
        super().__init__()
        self.config = config
        self.generation_config = GenerationConfig()
        self.model = Body(config, rotary)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    @property
    def device(self) -> torch.device:
        return self.model.norm.weight.device  # (the embedding may have no weight of its own: cpu/widen.py)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.norm.weight.dtype

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor, kv) -> torch.Tensor:
        """input_ids [1, m] after the kv.n cached positions (kv.begin(m) done); the logits [1, vocab] after the last."""
        return self.lm_head(self._hidden(input_ids, kv)[:, -1:, :])[:, -1, :]

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, **_) -> SimpleNamespace:
        """transformers' call on a whole sequence [1, n], no cache (evaluation, tests): `.logits` [1, n, vocab]."""
        from ..gen.kvcache import KVCache

        kv = KVCache(self.config, input_ids.shape[1], self.dtype, self.device)
        kv.begin(input_ids.shape[1])
        return SimpleNamespace(logits=self.lm_head(self._hidden(input_ids, kv)))

    def _hidden(self, input_ids: torch.Tensor, kv) -> torch.Tensor:
        """The final norm's output [1, m, hidden] for input_ids after the kv.n cached positions, written into kv."""
        m, past = input_ids.shape[1], kv.n
        x = self.model.embed_tokens(input_ids)
        positions = torch.arange(past, past + m, device=x.device)[None]
        cos, sin = self.model.rotary_emb(x, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        mask = None  # transformers' SDPA path: is_causal where the cache is empty, a boolean mask after cached tokens
        if past and m > 1:
            mask = (torch.arange(past + m, device=x.device)[None] <= positions[0][:, None])[None, None]
        for i, layer in enumerate(self.model.layers):
            x = x + self._attend(i, layer.self_attn, layer.input_layernorm(x), cos, sin, mask, kv)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return self.model.norm(x)

    @staticmethod
    def _attend(i: int, a: Attention, h: torch.Tensor, cos, sin, mask, kv) -> torch.Tensor:
        m, d = h.shape[1], a.head_dim
        q = a.q_proj(h).view(1, m, -1, d).transpose(1, 2)
        k = a.k_proj(h).view(1, m, -1, d).transpose(1, 2)
        v = a.v_proj(h).view(1, m, -1, d).transpose(1, 2)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        keys, values = (t[None] for t in kv.write(i, k[0], v[0]))
        extra = {}
        if a.groups > 1:
            if mask is None and d <= 256:
                extra["enable_gqa"] = True
            else:
                keys, values = keys.repeat_interleave(a.groups, 1), values.repeat_interleave(a.groups, 1)
        out = F.scaled_dot_product_attention(
            q, keys, values, attn_mask=mask, dropout_p=0.0, scale=a.scaling, is_causal=m > 1 and mask is None, **extra
        )
        return a.o_proj(out.transpose(1, 2).contiguous().reshape(1, m, -1).contiguous())


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@contextlib.contextmanager
def _no_init():
    """Layers made without drawing random weights (on the meta device that goes through PyTorch's reference ops,
    which import torch._dynamo: 1.7 s of a start); the checkpoint's weights replace them anyway."""
    saved = nn.Linear.reset_parameters, nn.Embedding.reset_parameters
    nn.Linear.reset_parameters = nn.Embedding.reset_parameters = lambda self: None
    try:
        yield
    finally:
        nn.Linear.reset_parameters, nn.Embedding.reset_parameters = saved


def skeleton(folder: str | Path, dtype: torch.dtype) -> tuple[Llama, Config] | None:
    """The model with every weight on the meta device (its rotary table real), or None if it is not a plain Llama."""
    config = Config.read(folder)
    if config is None:
        return None
    with torch.device("meta"), _no_init():  # the rotary table is made outside: on the meta device it would be empty
        model = Llama(config, rotary=False).to(dtype)
    model.model.rotary_emb = Rotary(config)
    model.generation_config = GenerationConfig.read(folder)
    return model, config


def load(folder: str | Path, dtype: torch.dtype, device: str = "cpu", mapped: bool = False) -> Llama | None:
    """A plain Llama from a safetensors folder in `dtype` on `device`; None where transformers must load it.
    `mapped`: read from a mapping of the files, so that weights the model keeps as they are (on the CPU, in the
    file's dtype) may still lie there: the caller lays them out (widen.pack) or copies them (memory.own)."""
    built = skeleton(folder, dtype)
    if built is None or not any(Path(folder).glob("*.safetensors")):
        return None
    model, config = built
    ckpt = Checkpoint(folder, mapped=mapped)
    names = set(model.state_dict())
    if config.tie_word_embeddings:
        names.discard("lm_head.weight")
    if not names <= set(ckpt.keys()):
        return None  # other names (a prefix, a fused layout): transformers knows them
    model.load_state_dict({k: ckpt.get(k, dtype, device) for k in names}, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.model.rotary_emb.to(device)
    return model.eval()
