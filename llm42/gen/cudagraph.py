"""The decode step on a GPU, captured once as a CUDA graph and replayed for every token.

Launching a step's ~400 small kernels one by one from Python costs far more than the kernels themselves on
a GPU (a 1.3B model's weights stream through an H200 in under a millisecond). Captured once, a step is one
replay: the inputs (token, position) are copied into fixed buffers, the whole-window KV cache sits at fixed
addresses (a static KVCache), and the logits come out in a fixed buffer that sampling reads before the next
replay. Prefill stays transformers' own forward, writing into the same buffers."""

from __future__ import annotations

import torch

from .decode import Decoder


class GraphStep:
    """`step(token, pos)`: the next logits [1, vocab] (overwritten by the next call)."""

    def __init__(self, decoder: Decoder, warmup: int = 3):
        """Capture before anything is cached: the warm-up and capture write position 0, which the first
        prefill then overwrites."""
        device = decoder.kv.device
        self.token = torch.zeros(1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # allocations and lazy initialisation happen here, not in the graph
            for _ in range(warmup):
                decoder.static_step(self.token, self.pos)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = decoder.static_step(self.token, self.pos)
        torch.cuda.synchronize(device)

    def step(self, token: int, pos: int) -> torch.Tensor:
        self.token.fill_(token)
        self.pos.fill_(pos)
        self.graph.replay()
        return self.logits


def capture(decoder: Decoder, warn=lambda why: None) -> GraphStep | None:
    """The decoder's step as a graph, or None (said through `warn`) where this stack cannot capture one."""
    try:
        return GraphStep(decoder)
    except RuntimeError as e:
        warn(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        return None
