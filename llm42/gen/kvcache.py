"""The KV cache: each layer's keys and values written in place into buffers, read back as views.

Buffers grow by doubling (a decode step never copies the past), or are allocated whole and zeroed
(`static`: fixed addresses and shapes, as a CUDA graph needs). transformers' own forward (the prefill of models it
loads, and models without llm42's decode step) writes here through `hf_cache()`; importing this does not import it."""

from __future__ import annotations

import functools

import torch

from ..cpu.memory import huge_empty


class KVCache:
    """Layer l holds k[l], v[l]: [kv_heads, capacity, head_dim]; the first `n` positions are valid."""

    def __init__(self, config, max_len: int, dtype: torch.dtype, device: torch.device | str, static: bool = False):
        self.layers = config.num_hidden_layers
        self.heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.max_len, self.dtype, self.device, self.static = max_len, dtype, torch.device(device), static
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.n = 0
        self.adding = 0  # tokens a forward pass is writing after the first n
        self.allocations = 0  # how many times the buffers were made (what holds their addresses compares this)
        if static:
            self._allocate(max_len, torch.zeros)

    @property
    def capacity(self) -> int:
        return self.k[0].shape[1] if self.k else 0

    def _allocate(self, size: int, make=huge_empty) -> None:
        """New buffers of `size` positions, the cached ones copied in (read whole at every step: on a CPU in huge
        pages, cpu/memory.py)."""
        shape = (self.heads, size, self.head_dim)
        k = [make(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        v = [make(shape, dtype=self.dtype, device=self.device) for _ in range(self.layers)]
        for old, new in zip([*self.k, *self.v], [*k, *v]):
            new[:, : self.n] = old[:, : self.n]
        self.k, self.v = k, v
        self.allocations += 1

    def reserve(self, tokens: int) -> None:
        """Room for `tokens` positions in all (at most the window), allocated now: a cache filled from elsewhere
        (kvstore) or about to take a prompt and its reply is not copied to bigger buffers on the way. Growing, at least
        doubled (a chat reserving each turn's reply copies its past only now and then)."""
        if tokens > self.capacity:
            self._allocate(min(max(tokens, 2 * self.capacity), self.max_len))

    def begin(self, tokens: int) -> None:
        """Make room for `tokens` more; a forward pass then writes them (committed by `commit`)."""
        need = self.n + tokens
        if need > self.max_len:
            raise ValueError(f"the KV cache holds {self.max_len} tokens; {need} asked")
        if need > self.capacity:
            self._allocate(min(max(need, 2 * self.capacity, 256), self.max_len))
        self.adding = tokens

    def commit(self) -> None:
        self.n, self.adding = self.n + self.adding, 0

    def crop(self, n: int) -> None:
        """Keep the first `n` positions (a prompt that shares only that much with the cached one)."""
        self.n, self.adding = min(n, self.n), 0

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v: [kv_heads, t, head_dim] of the tokens being added; the layer's keys and values so far."""
        end = self.n + k.shape[1]
        self.k[layer][:, self.n : end] = k
        self.v[layer][:, self.n : end] = v
        return self.k[layer][:, :end], self.v[layer][:, :end]

    def hf_cache(self):
        """A transformers DynamicCache whose layers write into these buffers."""
        from transformers import DynamicCache

        cache = DynamicCache()
        layer = _buffer_layer()
        cache.layers = [layer(self, i) for i in range(self.layers)]
        return cache


@functools.cache
def _buffer_layer() -> type:
    """One layer of a KVCache, as transformers' forward expects a cache layer to behave (made when first needed)."""
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        def __init__(self, kv: KVCache, index: int):
            super().__init__()
            self.kv, self.index = kv, index
            self.is_initialized = True
            self.device = kv.device

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
            keys, values = self.kv.write(self.index, key_states[0], value_states[0])  # batch of one
            self.keys, self.values = keys[None], values[None]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.kv.n

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.kv.n + query_length, 0

        def crop(self, tokens_to_remove: int) -> None:
            raise NotImplementedError("crop through KVCache.crop")

        def reset(self) -> None:
            self.kv.crop(0)

    return BufferLayer
