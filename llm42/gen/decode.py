"""One token through a Llama-family decoder, written out (gpt-fast style): each matmul straight to its kernel
(PyTorch's or llm42's own, as gen/tuning.py measured), attention for one query without a general attention
kernel's overhead, rotary tables computed once, no transformers Python in the loop.

The same maths as transformers' LlamaForCausalLM, op for op where it matters (RMSNorm in fp32, rotary in the
model's dtype); prefill stays transformers' own forward, writing into the same KVCache. With a `static`
cache every shape is fixed and the position is a tensor, so the step can be captured as a CUDA graph."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..cpu import native
from .kvcache import KVCache


def _own_bf16(w: torch.Tensor, b: torch.Tensor | None) -> bool:
    """Whether llm42's bf16 kernels can multiply by this weight (built, bf16 on the CPU, contiguous, no bias)."""
    return (
        b is None
        and native.library() is not None
        and w.dtype == torch.bfloat16
        and w.device.type == "cpu"
        and w.is_contiguous()
    )


def gemv(layer: nn.Module, own: bool = False):
    """x [1, in] -> [1, out] with the layer's own kernel, without its Python wrapper; `own`: llm42's C kernel
    (see native.py) where there is one. Quantized layers supply their product themselves."""
    if hasattr(layer, "product"):
        return layer.product(own)
    w, b = layer.weight, layer.bias
    if own and _own_bf16(w, b):
        return native.kernel(lambda x: native.gemv_bf16(w, x), native.BF16, w)
    return lambda x: F.linear(x, w, b)


def rows(layer: nn.Module, own: bool = False):
    """x [m, in] -> [m, out] for a few rows at once (a verify pass): the quantized layers' own product, which takes
    several rows; llm42's bf16 kernel for m rows wherever it is built (PyTorch's bf16 kernels for 2-9 rows read
    the weights at half the speed of one row's, or compute each row apart); else PyTorch's matmul."""
    if hasattr(layer, "product"):
        return layer.product(own)
    w, b = layer.weight, layer.bias
    if _own_bf16(w, b):
        return native.kernel(lambda x: native.gemm_bf16(w, x.contiguous()), native.BF16, w)
    return lambda x: F.linear(x, w, b)


def kind_of(layer: nn.Module) -> str:
    """A layer's kind as the tuning measures it and keeps its choice under (a layer laid out for llm42's kernel after
    the tuning gave them its products counts as what was measured: cpu/widen.PanelLinear)."""
    return getattr(layer, "kind", type(layer).__name__)


def decode_layers(model: nn.Module) -> list[nn.Module]:
    """The layers a decode step multiplies by, in the order it does."""
    out = []
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        out += [a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj]
    return [*out, model.lm_head]


def attend(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """q [heads, d] against keys/values [kv_heads, n, d]: two batched matmuls over the groups of heads that
    share a key head (GQA), softmax in fp32 as transformers' eager attention does; [1, heads * d]."""
    q = q.view(keys.shape[0], -1, q.shape[-1])  # [kv_heads, group, d]
    scores = torch.bmm(q, keys.transpose(1, 2)) * scale  # [kv_heads, group, n]
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
    return torch.bmm(probs, values).view(1, -1)


class Decoder:
    """`step(token)`: the logits [1, vocab] after one more token at position kv.n (then kv.n grows by one)."""

    def __init__(self, model: nn.Module, kv: KVCache, own_matmuls: list[str] = (), own_attention: bool = False):
        """`own_matmuls` (layer kinds, e.g. "Int8Linear"), `own_attention`: llm42's C kernels for those
        (gen/tuning.py measures which is faster on this machine)."""
        c = model.config
        self.kv, self.dtype = kv, model.dtype
        self.heads, self.kv_heads, self.head_dim = c.num_attention_heads, kv.heads, kv.head_dim
        self.eps = c.rms_norm_eps
        self.scale = self.head_dim**-0.5
        self.embed = model.model.embed_tokens  # the module: a table tied to a head in panels is no tensor of rows
        own = kv.dtype == torch.bfloat16 and kv.device.type == "cpu" and native.library() is not None
        self.own_attention = own_attention and own and self.head_dim <= 256
        self.own_glue = own and self.head_dim <= 512  # norms, rotary, residual adds: llm42's, as exact as PyTorch's
        built = native.library() is not None
        chosen = lambda p: kind_of(p) in own_matmuls
        # a step's products are the fastest measured; a verify pass's are llm42's wherever they are built, which round
        # each row as llm42's one-row kernels do (tuning prefers those where they are about as fast, so that
        # speculation gives exactly the tokens of plain decoding)
        self.layers, self.head = self._products(model, lambda p: gemv(p, chosen(p)))
        self.row_layers, self.row_head = self._products(model, lambda p: rows(p, built))
        self.norm = model.model.norm.weight
        self.row_attention = self.own_glue and self.head_dim <= 256  # llm42's attention in verify passes
        # every layer in one call to llm42's library where each of its products is one of llm42's kernels (the same
        # kernels in the same order as the Python loop, so the same bits; `one_call` False: the loop, the reference)
        self.ffn, self.one_call = c.intermediate_size, True
        self._filled: dict[int, int] = {}  # spec -> the KV allocation its buffers' addresses are of
        self.step_spec = self._native_spec(self.layers) if self.own_attention else None
        self.row_spec = self._native_spec(self.row_layers) if self.row_attention else None
        positions = torch.arange(kv.max_len, device=kv.device)[None]
        with torch.inference_mode():  # the model's own rotary module: every RoPE variant it knows, exactly
            cos, sin = model.model.rotary_emb(torch.zeros(1, 1, dtype=model.dtype, device=kv.device), positions)
        self.cos, self.sin = cos[0], sin[0]  # [max_len, head_dim]

    @staticmethod
    def _products(model: nn.Module, product) -> tuple[list[tuple], object]:
        """(per layer: norm, q, k, v, o, norm, gate, up, down; the output head) with `product` for each Linear."""
        layers = []
        for layer in model.model.layers:
            a, m = layer.self_attn, layer.mlp
            q, k, v, o, gate, up, down = map(
                product, (a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj)
            )
            layers.append(
                (layer.input_layernorm.weight, q, k, v, o, layer.post_attention_layernorm.weight, gate, up, down)
            )
        return layers, product(model.lm_head)

    def _native_spec(self, layers) -> torch.Tensor | None:
        """kernels.c's llm42_layers spec for these layers' products (int64 [layers, 4 + 7 * 4]: the norms' weights,
        the KV buffers (filled in by `_pointed`), then each product's kind, weight, scales, group), or None where a
        product is not one of llm42's kernels or a norm is not bf16."""
        if not self.own_glue:
            return None
        rows = []
        for norm1, q, k, v, o, norm2, gate, up, down in layers:
            marks = [getattr(p, "native", None) for p in (q, k, v, o, gate, up, down)]
            if None in marks or norm1.dtype != torch.bfloat16 or norm2.dtype != torch.bfloat16:
                return None
            row = [norm1.data_ptr(), norm2.data_ptr(), 0, 0]
            for kind, w, scales, group in marks:
                row += [kind, w.data_ptr(), 0 if scales is None else scales.data_ptr(), group]
            rows.append(row)
        return torch.tensor(rows, dtype=torch.int64)

    def _pointed(self, spec: torch.Tensor) -> torch.Tensor:
        """`spec` with the KV cache's buffers as they are now (they move when the cache grows: each spec is filled
        again after every allocation; comparing one buffer's address missed a new one that reused a freed one's)."""
        if self._filled.get(id(spec)) != self.kv.allocations:
            spec[:, 2] = torch.tensor([t.data_ptr() for t in self.kv.k])
            spec[:, 3] = torch.tensor([t.data_ptr() for t in self.kv.v])
            self._filled[id(spec)] = self.kv.allocations
        return spec

    def rmsnorm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * h.to(x.dtype)

    @staticmethod
    def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin

    @torch.inference_mode()
    def step(self, token: int) -> torch.Tensor:
        """Dynamic: attention over the n + 1 positions so far, with the products and attention the tuning chose."""
        return self._forward([token], self.layers, self.head, self.own_glue, self.own_attention, self.step_spec)

    @torch.inference_mode()
    def verify(self, tokens: list[int]) -> torch.Tensor:
        """Dynamic, several tokens in one pass (speculation's verify): the logits [m, vocab] after each of `tokens`
        at positions kv.n.., each attending to the cache and the tokens before it. The weights are read once for
        all m rows, so m tokens cost little more than one step while weights dominate; each row's glue and
        attention are a step's own kernels (llm42's, where they are built)."""
        return self._forward(tokens, self.row_layers, self.row_head, self.row_attention, True, self.row_spec)

    def _forward(self, tokens: list[int], layers, head, own_glue: bool, own_attention: bool, spec) -> torch.Tensor:
        """`tokens` at positions kv.n.. through `layers` (a step's products or a verify pass's), each attending to
        the cache and the tokens before it; the logits after each. `own_glue`: norms, rotary, residual adds and SiLU
        by llm42's kernels, row by row as one token's; `own_attention` too (else PyTorch's, one token only); `spec`:
        all of it in one call (`_native_spec`)."""
        kv, m = self.kv, len(tokens)
        kv.begin(m)
        pos = kv.n
        x = self.embed(torch.tensor(tokens, device=kv.device))  # [m, hidden], the residual stream (a copy)
        cos, sin = self.cos[pos : pos + m], self.sin[pos : pos + m]  # [m, head_dim]
        if own_glue:
            cos, sin = cos.contiguous(), sin.contiguous()  # the kernels read them as plain rows
            if spec is not None and self.one_call:
                x = x.contiguous()
                native.layers(self._pointed(spec), x, pos, cos, sin, self.ffn, self.heads, self.kv_heads,
                              kv.capacity, self.eps, self.scale)  # fmt: skip
            else:
                for i, layer in enumerate(layers):
                    x = self._own_rows(i, layer, x, cos, sin, pos, own_attention)
            out = native.rmsnorm_rows(x, self.norm, self.eps)
        else:
            later = None  # one token sees every key: no mask to build or apply
            if m > 1:
                at = torch.arange(pos + m, device=x.device)
                later = at[None] > at[pos:, None]
            for i, layer in enumerate(layers):
                x = self._rows(i, layer, x, cos, sin, later)
            out = self.rmsnorm(x, self.norm)
        kv.commit()
        return head(out)

    @torch.inference_mode()
    def static_step(self, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """token, pos: [1] long tensors. Fixed shapes and addresses throughout (a static KVCache): attention
        over the whole window, positions after `pos` masked out; capturable as a CUDA graph."""
        cos, sin = self.cos.index_select(0, pos), self.sin.index_select(0, pos)
        mask = (torch.arange(self.kv.max_len, device=pos.device) > pos).view(1, 1, -1)
        x = self.embed(token)
        for i, layer in enumerate(self.layers):
            x = self._static_layer(i, layer, x, cos, sin, pos, mask)
        return self.head(self.rmsnorm(x, self.norm))

    def _static_layer(self, i, layer, x, cos, sin, slot, mask):
        """One decoder layer for one token at fixed shapes: write at position tensor `slot`, attend over the whole
        (static) buffer with `mask` (the positions after it)."""
        norm1, wq, wk, wv, wo, norm2, gate, up, down = layer
        h = self.rmsnorm(x, norm1)
        q = self.rotate(wq(h).view(self.heads, self.head_dim), cos, sin)
        k = self.rotate(wk(h).view(self.kv_heads, 1, self.head_dim), cos, sin)
        self.kv.k[i].index_copy_(1, slot, k)
        self.kv.v[i].index_copy_(1, slot, wv(h).view(self.kv_heads, 1, self.head_dim))
        att = attend(q, self.kv.k[i], self.kv.v[i], self.scale, mask)
        x = x + wo(att)
        h = self.rmsnorm(x, norm2)
        return x + down(F.silu(gate(h)) * up(h))

    def _own_rows(self, i, layer, x, cos, sin, pos, own_attention=True):
        """One decoder layer for m tokens with llm42's glue: each row's norms, rotary and attention (over the cache
        and the rows before it) the same bits as that row alone; the products read each weight once for all rows.
        Without `own_attention` (one token only) PyTorch's batched matmuls attend."""
        norm1, wq, wk, wv, wo, norm2, gate, up, down = layer
        m, d = x.shape[0], self.head_dim
        h = native.rmsnorm_rows(x, norm1, self.eps)
        q = native.rope_rows_(wq(h).view(m, self.heads, d), cos, sin)
        k = native.rope_rows_(wk(h).view(m, self.kv_heads, d), cos, sin)
        keys, values = self.kv.write(i, k.transpose(0, 1), wv(h).view(m, self.kv_heads, d).transpose(0, 1))
        if own_attention:
            att = native.attend_rows(q, self.kv.k[i], self.kv.v[i], pos, self.scale)
        else:
            att = attend(q[0], keys, values, self.scale)
        native.add_(x, wo(att))
        h = native.rmsnorm_rows(x, norm2, self.eps)
        return native.add_(x, down(native.silu_mul_(gate(h), up(h))))

    def _rows(self, i, layer, x, cos, sin, later):
        """One decoder layer for m tokens with PyTorch's glue and attention; `later` [m, n + m]: the keys each token
        must not see (the ones after it; None for one token)."""
        norm1, wq, wk, wv, wo, norm2, gate, up, down = layer
        m, d = x.shape[0], self.head_dim
        h = self.rmsnorm(x, norm1)
        q = self.rotate(wq(h).view(m, self.heads, d).transpose(0, 1), cos, sin)  # [heads, m, d]
        k = self.rotate(wk(h).view(m, self.kv_heads, d).transpose(0, 1), cos, sin)  # [kv_heads, m, d]
        keys, values = self.kv.write(i, k, wv(h).view(m, self.kv_heads, d).transpose(0, 1))
        group = self.heads // self.kv_heads
        q = q.reshape(self.kv_heads, group * m, d)  # the heads sharing a key head, each with its m rows
        scores = (torch.bmm(q, keys.transpose(1, 2)) * self.scale).view(self.kv_heads, group, m, -1)
        if later is not None:
            scores = scores.masked_fill(later, float("-inf"))
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
        att = torch.bmm(probs.to(values.dtype).view(self.kv_heads, group * m, -1), values)  # [kv_heads, group*m, d]
        x = x + wo(att.view(self.heads, m, d).transpose(0, 1).reshape(m, self.heads * d))
        h = self.rmsnorm(x, norm2)
        return x + down(F.silu(gate(h)) * up(h))
