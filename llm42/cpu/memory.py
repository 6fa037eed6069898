"""Memory for a process that reads big tensors: glibc's heap tuned (freed blocks reused, and handed back when asked),
and files mapped while a model loads.

A weight that is only read at load time (to be laid out in panels, quantized, converted to another dtype or copied
to a GPU) is read from a private mapping of its file: its pages come from the page cache, nothing is allocated and
filled first (on a VM a page costs 1-8 us the first time a process touches it: a 1.3B model's bf16 weights read
into new buffers and then packed took 15-30 s where packing them from the mapping took 2 s). `release` drops such
a weight's pages from the process once it is used (a mapped page counts in the resident memory until then), and
`own` copies whatever the model keeps as it is into memory of its own: nothing stays mapped once a model is loaded
(a file changed under a mapping would fault).

What a model keeps (`own`) and the KV cache lie in memory backed by 2 MB pages where the kernel gives them on request
(Linux's transparent huge pages in "madvise" mode, the default of Ubuntu and Debian): a decode step streams every
weight, and with 4 KB pages each one is a miss in the address translation caches. On a 2-core Zen 5, the 42dot int4
shape's first reply 49.0-49.3 -> 54.1-54.9 tokens/s (later ones 52.2-53.4 -> 52.6-55.8), SmolLM2's verify of 8
drafts 1.43-1.50 -> 1.29-1.32 steps (a step alike)."""

from __future__ import annotations

import ctypes
import functools
import math
import mmap
import weakref
from pathlib import Path

import torch
from torch import nn

_maps: list[tuple[int, int, weakref.ref]] = []  # the mappings made: address, size, the mmap (alive while mapped)
_huge: list[tuple[int, int, weakref.ref]] = []  # the same for the memory huge_empty made
PAGE = mmap.PAGESIZE
HUGE = 2 << 20  # a huge page (x86-64, and the size ARM64 Linux uses with 4 KB pages)
THP = "/sys/kernel/mm/transparent_hugepage/enabled"  # Linux's switch for them: always, madvise or never
MOVED = 512 << 20  # own: the freed memory handed back after this many bytes moved (the peak: the model and this)


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
    return _noted(_maps, pages)


def mapping_of(t: torch.Tensor) -> tuple[mmap.mmap, int] | None:
    """The live mapping `t`'s data lies in and its offset there, else None."""
    if t.device.type != "cpu" or not t.numel():
        return None
    return _within(t.data_ptr(), _maps)


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


@functools.cache
def huge_pages_on_request() -> bool:
    """Whether this kernel backs anonymous memory with huge pages where a process asks (THP "madvise"); "always"
    does without asking, "never" not at all, and other systems have no such switch."""
    try:
        return hasattr(mmap, "MADV_HUGEPAGE") and "[madvise]" in Path(THP).read_text()
    except OSError:
        return False


def huge_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """torch.empty, in 2 MB pages where it is a CPU tensor that fills one at least and the kernel gives them on
    request (its last part under 2 MB in small pages). Its storage holds the mapping: it goes when the last view of
    it does."""
    size = math.prod(shape) * dtype.itemsize
    if size < HUGE or torch.device(device).type != "cpu" or not huge_pages_on_request():
        return torch.empty(shape, dtype=dtype, device=device)
    pages = mmap.mmap(-1, size + HUGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # (shared memory: shmem's THP)
    whole = _noted(_huge, pages)
    start = -whole.data_ptr() % HUGE
    pages.madvise(mmap.MADV_HUGEPAGE, start, size // HUGE * HUGE)  # the tail in small pages: none half used
    return whole[start : start + size].view(dtype).view(shape)


def _noted(maps: list, pages: mmap.mmap) -> torch.Tensor:
    """`pages` as a uint8 tensor (its storage, and every view of it, holds the mmap), noted in `maps` (_maps or
    _huge) while it lives."""
    whole = torch.frombuffer(pages, dtype=torch.uint8)
    maps[:] = [m for m in maps if m[2]() is not None]
    maps.append((whole.data_ptr(), whole.numel(), weakref.ref(pages)))
    return whole


def in_huge_pages(t: torch.Tensor) -> bool:
    return _within(t.data_ptr(), _huge) is not None


def _within(at: int, maps: list) -> tuple[mmap.mmap, int] | None:
    for start, size, ref in maps:
        pages = ref()
        if pages is not None and start <= at < start + size:
            return pages, at - start
    return None


def own(model: nn.Module) -> int:
    """Every parameter and buffer of `model` that lies in a mapping, copied into memory of its own in place, and
    every other one of 2 MB or more into huge pages where the kernel gives them on request (huge_empty); how many.
    Tensors shared between modules stay shared; a moved tensor's old memory is handed back as the move goes on."""
    copies: dict[int, torch.Tensor] = {}
    moved = 0
    for module in model.modules():
        for table in (module._parameters, module._buffers):
            for name, t in table.items():
                if t is None or not (mapping_of(t) is not None or _movable(t)):
                    continue
                if id(t) not in copies:
                    data = huge_empty(tuple(t.shape), t.dtype).copy_(t.detach())
                    copies[id(t)] = nn.Parameter(data, requires_grad=False) if isinstance(t, nn.Parameter) else data
                    release(t)  # the resident memory holds the copy, not both
                    moved += t.numel() * t.element_size()
                table[name] = copies[id(t)]
                del t
                if moved >= MOVED:  # the heap memory of what moved so far, back to the system
                    release_free_memory()
                    moved = 0
    release_free_memory()
    return len(copies)


def _movable(t: torch.Tensor) -> bool:
    """Whether `t` would go into huge pages (a CPU tensor of at least one, not in them yet)."""
    big = t.device.type == "cpu" and t.is_contiguous() and t.numel() * t.element_size() >= HUGE
    return big and huge_pages_on_request() and not in_huge_pages(t)
