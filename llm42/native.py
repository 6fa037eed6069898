"""llm42's own CPU kernels for decode steps (native/decode_kernels.c), built once for this CPU with the
system's C compiler and loaded with ctypes. Without a compiler, or where they measure slower than PyTorch's
(kernels.py decides, per machine), PyTorch's kernels run instead."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch  # first: its OpenMP runtime is the one the kernels then share

from .paths import cache_dir

SOURCE = Path(__file__).parent / "native" / "decode_kernels.c"
_lib: ctypes.CDLL | None | bool = False  # False: not tried yet
P, I64, F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
SIGNATURES = {
    "llm42_gemv_bf16": [P, P, P, I64, I64],
    "llm42_gemv_int8": [P, P, P, P, I64, I64],
    "llm42_gemv_int4": [P, P, I64, P, P, I64, I64],
    "llm42_attend": [P, P, P, P, I64, I64, I64, I64, I64, F32],
    "llm42_rmsnorm": [P, P, P, I64, F32],
    "llm42_rope": [P, P, P, I64, I64],
    "llm42_add": [P, P, I64],
    "llm42_silu_mul": [P, P, I64],
    "llm42_dequant_int8": [P, P, P, I64, I64],
    "llm42_dequant_int4": [P, P, I64, P, I64, I64],
}


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def build(out: Path, cc: str) -> bool:
    """Compile for this machine; OpenMP if the compiler has it (Apple's clang does not: one thread then)."""
    base = [cc, "-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC", str(SOURCE), "-o", str(out), "-lm"]
    for flags in (["-fopenmp"], []):
        try:
            done = subprocess.run(base[:1] + flags + base[1:], capture_output=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if done.returncode == 0:
            return True
    return False


def library() -> ctypes.CDLL | None:
    """The compiled kernels (built on first use and kept in the cache folder), or None."""
    global _lib
    if _lib is not False:
        return _lib
    _lib = None
    if os.environ.get("LLM42_NATIVE", "1") == "0" or sys.platform == "win32":
        return None
    cc = compiler()
    if cc is None:
        return None
    from .kernels import cpu_name

    key = hashlib.sha256(SOURCE.read_bytes() + f"{cc}|{cpu_name()}|{sys.platform}".encode()).hexdigest()[:16]
    so = cache_dir() / "native" / f"decode_kernels-{key}.so"
    if not so.is_file():
        so.parent.mkdir(parents=True, exist_ok=True)
        tmp = so.with_suffix(f".{os.getpid()}.tmp")
        if not build(tmp, cc):
            tmp.unlink(missing_ok=True)
            return None
        tmp.replace(so)
    try:
        lib = ctypes.CDLL(str(so))
    except OSError:
        return None
    for name, args in SIGNATURES.items():
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = None
    _lib = lib
    return lib


def gemv_bf16(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x [1, k] @ W[n, k]^T for bf16 W and x; y [1, n] bf16."""
    n, k = w.shape
    y = torch.empty(1, n, dtype=torch.bfloat16)
    _lib.llm42_gemv_bf16(w.data_ptr(), x.data_ptr(), y.data_ptr(), n, k)
    return y


def gemv_int8(w: torch.Tensor, scales: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    n, k = w.shape
    y = torch.empty(1, n, dtype=torch.bfloat16)
    _lib.llm42_gemv_int8(w.data_ptr(), scales.data_ptr(), x.data_ptr(), y.data_ptr(), n, k)
    return y


def gemv_int4(packed: torch.Tensor, scales_zeros: torch.Tensor, group: int, k: int, x: torch.Tensor) -> torch.Tensor:
    n = packed.shape[0]
    y = torch.empty(1, n, dtype=torch.bfloat16)
    _lib.llm42_gemv_int4(packed.data_ptr(), scales_zeros.data_ptr(), group, x.data_ptr(), y.data_ptr(), n, k)
    return y


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, n: int, scale: float) -> torch.Tensor:
    """q [heads, d] bf16 against the first n positions of a KV layer [kv_heads, capacity, d]; [1, heads * d]."""
    heads, d = q.shape
    kv_heads, capacity, _ = keys.shape
    out = torch.empty(1, heads * d, dtype=torch.bfloat16)
    _lib.llm42_attend(q.data_ptr(), keys.data_ptr(), values.data_ptr(), out.data_ptr(), heads, kv_heads, n, d,
                      capacity * d, scale)
    return out


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    out = torch.empty_like(x)
    _lib.llm42_rmsnorm(x.data_ptr(), weight.data_ptr(), out.data_ptr(), x.numel(), eps)
    return out


def rope_(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """In place on x [heads, d] (contiguous) with this position's cos, sin [d]."""
    _lib.llm42_rope(x.data_ptr(), cos.data_ptr(), sin.data_ptr(), x.shape[0], x.shape[-1])
    return x


def add_(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    _lib.llm42_add(x.data_ptr(), y.data_ptr(), x.numel())
    return x


def silu_mul_(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    _lib.llm42_silu_mul(gate.data_ptr(), up.data_ptr(), gate.numel())
    return gate


def dequant_int8(qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """An int8 weight as bf16 [n, k], rounded as PyTorch's qweight.to(bf16) * scales rounds it."""
    n, k = qweight.shape
    out = torch.empty(n, k, dtype=torch.bfloat16)
    _lib.llm42_dequant_int8(qweight.data_ptr(), scales.data_ptr(), out.data_ptr(), n, k)
    return out


def dequant_int4(packed: torch.Tensor, scales_zeros: torch.Tensor, group: int, k: int) -> torch.Tensor:
    """An int4 weight (torch's CPU packing) as bf16 [n, k], rounded as Int4Linear.dequantize rounds it."""
    n = packed.shape[0]
    out = torch.empty(n, k, dtype=torch.bfloat16)
    _lib.llm42_dequant_int4(packed.data_ptr(), scales_zeros.data_ptr(), group, out.data_ptr(), n, k)
    return out
