"""llm42's own CPU kernels for decode steps (cpu/kernels.c), built once for this CPU with the
system's C compiler and loaded with ctypes. Without a compiler, or where they measure slower than PyTorch's
(gen/tuning.py decides, per machine), PyTorch's kernels run instead."""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import tempfile
import threading
from pathlib import Path

import torch  # first: its OpenMP runtime is the one the kernels then share

from ..paths import cache_dir
from .build import build, compiler, key, target

VERSION = 15  # llm42_kernels_version() of the source this module speaks to
_lib: ctypes.CDLL | None | bool = False  # False: not tried yet
_why = ""  # what library() found, for --debug
_lock = threading.Lock()  # one build at a time: prefetch()'s and a first caller's
P, I64, F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
SIGNATURES = {
    "llm42_gemv_bf16": [P, P, P, I64, I64],
    "llm42_gemm_bf16": [P, P, P, I64, I64, I64],
    "llm42_gemm_int8": [P, P, P, P, I64, I64, I64],
    "llm42_gemm_int4": [P, P, I64, P, P, I64, I64, I64],
    "llm42_attend": [P, P, P, P, I64, I64, I64, I64, I64, F32],
    "llm42_attend_rows": [P, P, P, P, I64, I64, I64, I64, I64, I64, F32],
    "llm42_rmsnorm": [P, P, P, I64, F32],
    "llm42_rope": [P, P, P, I64, I64],
    "llm42_rmsnorm_rows": [P, P, P, I64, I64, F32],
    "llm42_rope_rows": [P, P, P, I64, I64, I64],
    "llm42_add": [P, P, I64],
    "llm42_silu_mul": [P, P, I64],
    "llm42_dequant_int8": [P, P, P, I64, I64],
    "llm42_dequant_int4": [P, P, I64, P, I64, I64],
    "llm42_widen_bf16": [P, P, I64],
    "llm42_read": [P, I64, P],
    "llm42_pack_bf16": [P, P, I64, I64],
    "llm42_unpack_bf16": [P, P, I64, I64],
    "llm42_widen_bf16p": [P, P, I64, I64],
    "llm42_gemm_bf16p": [P, P, P, I64, I64, I64],
    "llm42_bf16_pairs": [I64, I64],
    "llm42_gemm_pairs": [P, P, P, I64, I64, I64],
    "llm42_products": [P, I64, P, P, I64, I64, I64],
    "llm42_layers": [P, I64, P, I64, I64, P, P, I64, I64, I64, I64, I64, I64, F32, F32],
    "llm42_sample_dist": [P, I64, I64, P, I64, F32, F32, I64, F32, P, P, P],
}
RETURNS = {"llm42_sample_dist": I64, "llm42_bf16_pairs": I64}  # the others return nothing


def _open(so: Path) -> ctypes.CDLL | None:
    """Load a built library and check it is the one this module expects: every kernel exported, right version."""
    try:
        lib = ctypes.CDLL(str(so))
        for name, args in SIGNATURES.items():
            getattr(lib, name).argtypes = args
            getattr(lib, name).restype = RETURNS.get(name)
        return lib if lib.llm42_kernels_version() == VERSION else None
    except (OSError, AttributeError):
        return None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cached(so: Path) -> ctypes.CDLL | None:
    """The library kept in the cache, if it is whole: its checksum, written beside it after a complete build,
    matches (a truncated file would load, then die of SIGBUS on first use)."""
    try:
        whole = so.is_file() and so.with_suffix(".sha256").read_text().strip() == _digest(so)
    except OSError:
        whole = False
    return _open(so) if whole else None


def _build_into(folder: Path, name: str, cc: str, arch: str) -> ctypes.CDLL | None:
    """Build under a temporary name, check it loads, then rename it (and its checksum) into place."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}.{os.getpid()}.tmp.so"
    try:
        if not build(tmp, cc, arch) or not tmp.is_file() or _open(tmp) is None:
            return None
        so = folder / f"{name}.so"
        digest = folder / f"{name}.{os.getpid()}.tmp.sha256"
        digest.write_text(_digest(tmp))
        tmp.replace(so)
        digest.replace(so.with_suffix(".sha256"))
        return _open(so)
    finally:
        tmp.unlink(missing_ok=True)


def describe() -> str:
    """One line for --debug: which kernels run, and why."""
    library()
    return _why


def prefetch() -> None:
    """Build (or open) the kernels on another thread, while the model loads: a first start's compile (2-3 s) then
    runs beside the single-threaded parts of loading instead of after them."""
    if _lib is False:
        threading.Thread(target=library, name="llm42-kernels", daemon=True).start()


def library() -> ctypes.CDLL | None:
    """The compiled kernels (built on first use and kept in the cache folder), or None."""
    global _lib, _why
    if _lib is not False:
        return _lib
    with _lock:
        if _lib is False:
            lib, _why = _library()
            _lib = lib  # set last: a reader that does not take the lock sees False until the answer is there
    return _lib


def _library() -> tuple[ctypes.CDLL | None, str]:
    """The kernels and what was found, for --debug."""
    if os.environ.get("LLM42_NATIVE", "1") == "0" or sys.platform == "win32":
        off = "LLM42_NATIVE=0" if sys.platform != "win32" else "Windows"
        return None, f"llm42's C kernels are off ({off}): PyTorch's kernels run"
    cc = compiler()
    if cc is None:
        return None, "no C compiler (cc, gcc, clang or $CC): PyTorch's kernels run"
    arch = target()
    name = f"decode_kernels-{key(cc, arch)}"
    folder = cache_dir() / "native"
    lib = _cached(folder / f"{name}.so")
    if lib is None:
        try:
            lib = _build_into(folder, name, cc, arch)
        except OSError:  # a cache folder that cannot be written: build where we can, for this run only
            lib = _build_into(Path(tempfile.mkdtemp(prefix="llm42-")), name, cc, arch)
    if lib is None:
        return None, f"{cc} could not build llm42's C kernels: PyTorch's kernels run"
    return lib, f"llm42's C kernels, built by {cc} for {arch}"


# a product's kind in llm42_layers' spec (kernels.c)
BF16, BF16_PANELS, INT8, INT4, BF16_PAIRS = range(5)


def kernel(f, kind: int, weight: torch.Tensor, scales: torch.Tensor | None = None, group: int = 0):
    """Mark a product `f` (x [m, in] -> [m, out]) as llm42's kernel `kind` over these tensors and nothing else, so
    that `layers` may call that kernel itself; returns f."""
    f.native = (kind, weight, scales, group)
    return f


def layers(spec: torch.Tensor, x: torch.Tensor, pos: int, cos, sin, ffn: int, heads: int, kv_heads: int,
           capacity: int, eps: float, scale: float) -> torch.Tensor:  # fmt: skip
    """Every decoder layer for x [m, hidden] (the residual stream, in place) at positions pos.. in one call, as the
    Python loop of gen/decode.py calls the kernels: `spec` [layers, 32] int64 (decode.Decoder.native_spec)."""
    m, hidden = x.shape
    d = cos.shape[-1]
    _lib.llm42_layers(spec.data_ptr(), spec.shape[0], x.data_ptr(), m, pos, cos.data_ptr(), sin.data_ptr(), hidden,
                      ffn, heads, kv_heads, d, capacity, eps, scale)  # fmt: skip
    return x


_room: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # sample_dist's buffers, per vocabulary size


def sample_dist(logits: torch.Tensor, seen: torch.Tensor | None, penalty: float, temperature: float, top_k: int,
                top_p: float) -> tuple[torch.Tensor, torch.Tensor] | None:  # fmt: skip
    """What a token is drawn from, for contiguous CPU logits [vocab] (bf16 or fp32): (ids, probabilities), descending,
    as sampling.pick's PyTorch path computes them (kernels.c says how); None where the kernel leaves it to that path
    (a top-k over 64, no score a number). Views into buffers that the next call overwrites."""
    vocab = logits.shape[0]
    if vocab not in _room:
        _room[vocab] = (torch.empty(vocab), torch.empty(vocab, dtype=torch.long), torch.empty(vocab))
    scratch, ids, probs = _room[vocab]
    seen = seen.to(torch.long).contiguous() if seen is not None else None
    seen_at, nseen = (seen.data_ptr(), seen.shape[0]) if seen is not None and seen.numel() else (None, 0)
    bf = logits.dtype == torch.bfloat16
    n = _lib.llm42_sample_dist(logits.data_ptr(), bf, vocab, seen_at, nseen, penalty, temperature, top_k, top_p,
                               scratch.data_ptr(), ids.data_ptr(), probs.data_ptr())  # fmt: skip
    return (ids[:n], probs[:n]) if n else None


def gemv_bf16(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x [1, k] @ W[n, k]^T for bf16 W and x; y [1, n] bf16."""
    n, k = w.shape
    y = torch.empty(1, n, dtype=torch.bfloat16)
    _lib.llm42_gemv_bf16(w.data_ptr(), x.data_ptr(), y.data_ptr(), n, k)
    return y


def gemm_bf16(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x [m, k] @ W[n, k]^T for bf16 W and x, each weight row read once for all m rows; y [m, n] bf16, each row the
    same bits as gemv_bf16 of that row."""
    n, k = w.shape
    y = torch.empty(x.shape[0], n, dtype=torch.bfloat16)
    _lib.llm42_gemm_bf16(w.data_ptr(), x.data_ptr(), y.data_ptr(), x.shape[0], n, k)
    return y


def gemm_int8(w: torch.Tensor, scales: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x [m, k] bf16 @ W^T for int8 W [n, k] with a bf16 scale per row; y [m, n] bf16 (x rounded per block of 32)."""
    n, k = w.shape
    y = torch.empty(x.shape[0], n, dtype=torch.bfloat16)
    _lib.llm42_gemm_int8(w.data_ptr(), scales.data_ptr(), x.data_ptr(), y.data_ptr(), x.shape[0], n, k)
    return y


def gemm_int4(q: torch.Tensor, scales: torch.Tensor, group: int, x: torch.Tensor) -> torch.Tensor:
    """x [m, k] bf16 @ W^T for W in llm42's int4 layout (q [n, k/2] bytes, scales [n, 4 + 2 k/group] bytes)."""
    n, k = q.shape[0], q.shape[1] * 2
    y = torch.empty(x.shape[0], n, dtype=torch.bfloat16)
    _lib.llm42_gemm_int4(q.data_ptr(), scales.data_ptr(), group, x.data_ptr(), y.data_ptr(), x.shape[0], n, k)
    return y


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, n: int, scale: float) -> torch.Tensor:
    """q [heads, d] bf16 against the first n positions of a KV layer [kv_heads, capacity, d]; [1, heads * d]."""
    heads, d = q.shape
    kv_heads, capacity, _ = keys.shape
    out = torch.empty(1, heads * d, dtype=torch.bfloat16)
    _lib.llm42_attend(
        q.data_ptr(), keys.data_ptr(), values.data_ptr(), out.data_ptr(), heads, kv_heads, n, d, capacity * d, scale
    )
    return out


def attend_rows(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, n0: int, scale: float) -> torch.Tensor:
    """q [m, heads, d] bf16 (contiguous) for positions n0 .. n0 + m - 1 of a KV layer [kv_heads, capacity, d] that
    holds them: row j attends to the first n0 + j + 1 positions, the same bits as `attend` of that row; [m, heads*d]."""
    m, heads, d = q.shape
    kv_heads, capacity, _ = keys.shape
    out = torch.empty(m, heads * d, dtype=torch.bfloat16)
    _lib.llm42_attend_rows(
        q.data_ptr(), keys.data_ptr(), values.data_ptr(), out.data_ptr(), m, heads, kv_heads, n0, d, capacity * d, scale
    )
    return out


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    out = torch.empty_like(x)
    _lib.llm42_rmsnorm(x.data_ptr(), weight.data_ptr(), out.data_ptr(), x.numel(), eps)
    return out


def rope_(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """In place on x [heads, d] (contiguous) with this position's cos, sin [d]."""
    _lib.llm42_rope(x.data_ptr(), cos.data_ptr(), sin.data_ptr(), x.shape[0], x.shape[-1])
    return x


def rmsnorm_rows(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """rmsnorm of each row of x [m, n] (contiguous), each the same bits as rmsnorm of that row alone."""
    out = torch.empty_like(x)
    _lib.llm42_rmsnorm_rows(x.data_ptr(), weight.data_ptr(), out.data_ptr(), x.shape[0], x.shape[-1], eps)
    return out


def rope_rows_(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """In place on x [m, heads, d] (contiguous) with each row's position's cos, sin [m, d] (contiguous)."""
    _lib.llm42_rope_rows(x.data_ptr(), cos.data_ptr(), sin.data_ptr(), x.shape[0], x.shape[1], x.shape[2])
    return x


def add_(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    _lib.llm42_add(x.data_ptr(), y.data_ptr(), x.numel())
    return x


def silu_mul_(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    _lib.llm42_silu_mul(gate.data_ptr(), up.data_ptr(), gate.numel())
    return gate


def dequant_int8(qweight: torch.Tensor, scales: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """An int8 weight as bf16 [n, k] (into `out` if given), rounded as PyTorch's qweight.to(bf16) * scales rounds it."""
    n, k = qweight.shape
    out = torch.empty(n, k, dtype=torch.bfloat16) if out is None else out
    _lib.llm42_dequant_int8(qweight.data_ptr(), scales.data_ptr(), out.data_ptr(), n, k)
    return out


def dequant_int4(q: torch.Tensor, scales: torch.Tensor, group: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """An int4 weight (llm42's layout) as bf16 [n, k] (into `out` if given), rounded as Int4Linear.dequantize does."""
    n, k = q.shape[0], q.shape[1] * 2
    out = torch.empty(n, k, dtype=torch.bfloat16) if out is None else out
    _lib.llm42_dequant_int4(q.data_ptr(), scales.data_ptr(), group, out.data_ptr(), n, k)
    return out


def widen_bf16(w: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """A contiguous bf16 tensor as fp32 (into `out` if given; PyTorch's own conversion ran at a quarter of memory
    speed on AVX2)."""
    out = torch.empty(w.shape, dtype=torch.float32) if out is None else out
    _lib.llm42_widen_bf16(w.data_ptr(), out.data_ptr(), w.numel())
    return out
