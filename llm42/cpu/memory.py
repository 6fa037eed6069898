"""glibc's heap, tuned for a process that reads big tensors: freed blocks reused, and handed back when asked."""

from __future__ import annotations

import ctypes


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
