"""Weights laid out at load time for llm42's products (the AVX2 panels of cpu/widen.py, the AVX512-BF16 pairs of
cpu/pairs.py): what the layouts share. A laid-out layer keeps its weight only in its layout (no second copy) and
gives the plain weight back for a state dict, so a saved model is as before; an input embedding tied to a laid-out
output head gathers its rows from the head's layout, so the table is kept once."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .memory import release


class LaidLinear(nn.Module):
    """A linear layer without bias whose weight is kept in a kernel's layout; `plain` gives it back as [out, in].
    Fewer than `few` rows of x go through the layout's own kernel (`kernel`: each row the same bits whatever their
    number), more through PyTorch's matmul over the weight laid out again for it (`many`)."""

    few: int

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.out_features, self.in_features = weight.shape

    def kernel(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def many(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def plain(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = self.kernel(x2.contiguous()) if x2.shape[0] < self.few else self.many(x2)
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        destination[prefix + "weight"] = self.plain()


class TiedEmbedding(nn.Module):
    """An input embedding whose table is a laid-out output head's weight (a head tied to it)."""

    def __init__(self, head: LaidLinear):
        super().__init__()
        self.tied = [head]  # not a submodule: the head is the model's own, its state dict names it there
        self.num_embeddings, self.embedding_dim = head.out_features, head.in_features

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        destination[prefix + "weight"] = self.tied[0].plain()


def lay_out(
    model: nn.Module,
    wants: Callable[[nn.Module], bool],
    linear: Callable[[torch.Tensor], LaidLinear],
    embedding: Callable[[LaidLinear], TiedEmbedding],
) -> int:
    """Replace every layer that `wants` accepts by `linear(weight)`, in place, one at a time; how many. A weight
    shared with an embedding only (an output head tied to the input table) takes the embedding along
    (`embedding(layer)`); a weight shared in any other way stays as it is."""
    counts: dict[int, int] = {}
    for m in model.modules():
        for p in m.parameters(recurse=False):
            counts[id(p)] = counts.get(id(p), 0) + 1
    tables = {id(m.weight): (parent, name) for parent in model.modules() for name, m in parent.named_children()
              if type(m) is nn.Embedding}  # fmt: skip

    def alone(m: nn.Module) -> bool:
        return counts[id(m.weight)] == 1 or counts[id(m.weight)] == 2 and id(m.weight) in tables

    # (parent, name) pairs, not the layers: a list holding every old layer would keep every row-major weight alive
    # until the last is laid out (twice the model's memory at the peak)
    places = [
        (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
        if wants(child) and alone(child)
    ]
    for parent, name in places:
        weight = getattr(parent, name).weight
        layer = linear(weight)
        release(weight)  # read from the file's mapping where the loader mapped it: its pages go now
        setattr(parent, name, layer)
        if counts[id(weight)] == 2:
            table_parent, table_name = tables[id(weight)]
            setattr(table_parent, table_name, embedding(layer))
    return len(places)
