"""Memory for a process that reads big tensors: glibc's heap tuned (freed blocks reused, and handed back when asked),
and files mapped while a model loads.

A weight that is only read at load time (to be laid out in panels, quantized, converted to another dtype or copied
to a GPU) is read from a private mapping of its file: its pages come from the page cache, nothing is allocated and
filled first (on a VM a page costs 1-8 us the first time a process touches it: a 1.3B model's bf16 weights read
into new buffers and then packed took 15-30 s where packing them from the mapping took 2 s). `release` drops such
a weight's pages from the process once it is used (a mapped page counts in the resident memory until then), and
`own` copies whatever the model keeps as it is into memory of its own: nothing stays mapped once a model is loaded
(a file changed under a mapping would fault)."""

from __future__ import annotations

import ctypes
import mmap
import weakref
from pathlib import Path

import torch
from torch import nn

_maps: list[tuple[int, int, weakref.ref]] = []  # the mappings made: address, size, the mmap (alive while mapped)
PAGE = mmap.PAGESIZE


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None  # not glibc: nothing to tune


def release_free_memory() -> None:
    """Hand the read buffers' freed heap back to the OS (glibc keeps it otherwise)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def keep_freed_memory() -> None:
    """Let glibc reuse freed blocks instead of returning them to the OS.

    By default a block over a few MB is mmap-ed fresh and unmapped on free, so every prefill
    page-faults its activations (and the dequantized weights of int8/int4 layers) in anew:
    that made the first prompt of a quantized model take 3.0 s instead of 0.8 s."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-3, 512 * 1024**2)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 1024**2)  # M_TRIM_THRESHOLD


def mapped(path: Path) -> torch.Tensor:
    """The whole file as a writable uint8 tensor over a private mapping (copy on write: a write stays in this
    process, and `release` of a written page would undo it: mapped weights are only read)."""
    with open(path, "rb") as f:
        pages = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    whole = torch.frombuffer(pages, dtype=torch.uint8)  # its storage, and every view of it, holds the mmap
    _maps[:] = [m for m in _maps if m[2]() is not None]
    _maps.append((whole.data_ptr(), whole.numel(), weakref.ref(pages)))
    return whole


def mapping_of(t: torch.Tensor) -> tuple[mmap.mmap, int] | None:
    """The live mapping `t`'s data lies in and its offset there, else None."""
    if t.device.type != "cpu" or not t.numel():
        return None
    at = t.data_ptr()
    for start, size, ref in _maps:
        pages = ref()
        if pages is not None and start <= at < start + size:
            return pages, at - start
    return None


def release(t: torch.Tensor) -> None:
    """Drop the pages wholly inside `t` from the process if it lies in a mapping (`t` is not read again: the file's
    pages stay in the page cache); nothing otherwise."""
    found = mapping_of(t) if t.is_contiguous() else None
    if found is None:
        return
    pages, start = found
    end = start + t.numel() * t.element_size()
    first, last = -(-start // PAGE) * PAGE, end // PAGE * PAGE
    if last > first:
        pages.madvise(mmap.MADV_DONTNEED, first, last - first)


def own(model: nn.Module) -> int:
    """Every parameter and buffer of `model` that lies in a mapping, copied into memory PyTorch allocated (aligned
    as its kernels expect) in place; how many. Tensors shared between modules stay shared."""
    copies: dict[int, torch.Tensor] = {}
    for module in model.modules():
        for table in (module._parameters, module._buffers):
            for name, t in table.items():
                if t is None or mapping_of(t) is None:
                    continue
                if id(t) not in copies:
                    data = t.detach().clone(memory_format=torch.contiguous_format)
                    copies[id(t)] = nn.Parameter(data, requires_grad=False) if isinstance(t, nn.Parameter) else data
                    release(t)  # the resident memory holds the copy, not both
                table[name] = copies[id(t)]
    return len(copies)
