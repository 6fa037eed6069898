"""A KV cache layer that writes in place into preallocated room, so a decode step never copies the past."""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """Like DynamicLayer, but keys/values live in a buffer of doubling capacity.

    transformers' DynamicLayer concatenates on every step, copying the whole history per token;
    here a step writes one slot, and attention reads a view of the filled part."""

    def __init__(self, max_len: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_len = max_len
        self.n = 0
        self._k = self._v = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.n = 0
        self._k = self._v = None
        self.is_initialized = True

    def _room(self, need: int, like: torch.Tensor) -> None:
        cap = 0 if self._k is None else self._k.shape[-2]
        if need <= cap:
            return
        new = max(need, 2 * cap, 256)
        if self.max_len:
            new = max(min(new, self.max_len), need)
        b, h, _, d = like.shape
        k = torch.empty((b, h, new, d), dtype=like.dtype, device=like.device)
        v = torch.empty_like(k)
        if self.n:
            k[..., : self.n, :] = self._k[..., : self.n, :]
            v[..., : self.n, :] = self._v[..., : self.n, :]
        self._k, self._v = k, v

    def _views(self) -> None:
        self.keys = self._k[..., : self.n, :]
        self.values = self._v[..., : self.n, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        t = key_states.shape[-2]
        self._room(self.n + t, key_states)
        self._k[..., self.n : self.n + t, :] = key_states
        self._v[..., self.n : self.n + t, :] = value_states
        self.n += t
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.n if self.is_initialized else 0

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative count of tokens to remove")
        if tokens_to_remove and self.is_initialized:
            self.n = max(self.n + tokens_to_remove, 0)
            self._views()

    def reset(self) -> None:
        self.n = 0
        self._k = self._v = self.keys = self.values = None
        self.is_initialized = False


def new_cache(config, max_len: int | None = None) -> DynamicCache:
    """A DynamicCache whose plain full-attention layers grow in place (others are left as transformers made them)."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer(max_len) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
