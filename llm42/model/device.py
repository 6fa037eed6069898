"""Device and dtype choice: probe the machine, estimate the model's memory, decide."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

from ..cpu.flags import capability, cpu_class, cpu_flags, cpu_supports_bf16, cpu_supports_fp16
from ..errors import Llm42Error
from ..i18n import t

GiB = 1024**3
DTYPE_BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}
DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


class DeviceError(Llm42Error):
    """The model does not fit, or the requested device is absent."""


@dataclass
class Gpu:
    index: int
    name: str
    free: int  # bytes
    total: int
    bf16: bool


@dataclass
class Machine:
    """What the probes saw; the decision below reads nothing else."""

    cpu_available: int  # bytes of RAM available
    cpu_bf16: bool
    gpus: list[Gpu] = field(default_factory=list)
    mps: bool = False
    ram_limit: str = ""  # what sets cpu_available when it is not the machine's free RAM, e.g. " under ulimit -v"
    cpu_fp16: bool = False  # an Arm CPU with fp16 arithmetic (Apple M1 and later): fp16 when there is no bf16
    cpu_class: str = ""  # the instruction sets the CPU kernels use, as a user knows them ("AVX512-BF16, VNNI, AMX")


@dataclass
class Choice:
    device: str  # "cpu", "cuda:0", "mps"
    dtype: torch.dtype
    reason: str
    window: int | None = None  # a smaller context window than the model's, to fit in RAM


def probe() -> Machine:
    """Ask psutil and torch; never shells out."""
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            gpus.append(Gpu(i, torch.cuda.get_device_name(i), free, total, torch.cuda.is_bf16_supported()))
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    ram, limit = available_ram()
    bf16 = cpu_supports_bf16()
    return Machine(ram, bf16, gpus, mps, limit, cpu_supports_fp16(), cpu_class(cpu_flags(), capability(), bf16))


def available_ram() -> tuple[int, str]:
    """Bytes this process may still use, and what limits them: the machine's free RAM, a container's
    cgroup limit (psutil reports the host's RAM inside Docker), or an address-space limit (ulimit -v)."""
    limits = [(psutil.virtual_memory().available, "")]
    room = cgroup_room()
    if room is not None:
        limits.append((room, t("under_cgroup")))
    try:
        import resource
    except ImportError:  # Windows
        return min(limits)
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY:
        limits.append((max(soft - psutil.Process().memory_info().vms, 0), t("under_ulimit")))
    return min(limits)


def cgroup_room(root: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")) -> int | None:
    """Limit minus usage (less reclaimable file cache) of this process's memory cgroup, v2 or v1; None if unlimited."""
    try:
        lines = own.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: memory.max, memory.current
            names, folders = ("memory.max", "memory.current", "inactive_file"), [root / path.lstrip("/"), root]
        elif "memory" in controllers.split(","):  # v1
            names = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
            folders = [root / "memory" / path.lstrip("/"), root / "memory"]
        else:
            continue
        for folder in folders:  # inside a container its own cgroup is often mounted at the root
            try:
                limit = (folder / names[0]).read_text().strip()
                used = int((folder / names[1]).read_text())
                stat = dict(row.split() for row in (folder / "memory.stat").read_text().splitlines())
            except (OSError, ValueError):
                continue
            if limit == "max" or int(limit) >= 2**60:  # v1 writes "no limit" as a page-rounded 2**63
                break
            return max(int(limit) - used + int(stat.get(names[2], 0)), 0)
    return None


def estimate_bytes(config, dtype: torch.dtype, context: int | None = None, weight_bytes: float | None = None) -> int:
    """Weights + a full KV cache for `context` tokens + 10 % and 256 MiB of working room.

    `weight_bytes` overrides the bytes per parameter (quantized weights)."""
    h = config.hidden_size
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    ffn = config.intermediate_size
    vocab = config.vocab_size
    per_layer = h * heads * head_dim * 2 + h * kv_heads * head_dim * 2 + 3 * h * ffn + 2 * h
    embed = vocab * h * (1 if getattr(config, "tie_word_embeddings", False) else 2)
    params = layers * per_layer + embed + h
    b = DTYPE_BYTES[dtype]
    context = context or getattr(config, "max_position_embeddings", 4096)
    kv = 2 * layers * context * kv_heads * head_dim * b
    weights = params * (weight_bytes if weight_bytes is not None else b)
    return int((weights + kv) * 1.10 + 256 * 1024**2)


def gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


def _dtype_for(device: str, requested: str, m: Machine) -> tuple[torch.dtype, str]:
    if requested != "auto":
        return DTYPE_NAMES[requested], t("dtype_asked", name=requested)
    if device.startswith("cuda"):
        gpu = m.gpus[int(device.split(":")[1])]
        return (torch.bfloat16, t("dtype_gpu_bf16")) if gpu.bf16 else (torch.float16, t("dtype_gpu_fp16"))
    if device == "mps":
        return torch.float16, t("dtype_mps")
    cls = f" ({m.cpu_class})" if m.cpu_class else ""
    if m.cpu_bf16:
        return torch.bfloat16, t("dtype_cpu_bf16", cls=cls)
    if m.cpu_fp16:
        return torch.float16, t("dtype_cpu_fp16", cls=cls)
    return torch.bfloat16, t("dtype_cpu_bf16_widened", cls=cls)


def choose(requested: str, dtype: str, m: Machine, need: Callable[[torch.dtype, int], int], window: int) -> Choice:
    """Pick device, dtype and context window. `need(dtype, tokens)` gives the bytes the model needs in that
    dtype with a KV cache of `tokens`; on the CPU a smaller window (down to MIN_WINDOW) is taken rather than
    refusing a model whose weights fit."""
    if requested == "auto":
        tried = []
        for gpu in sorted(m.gpus, key=lambda g: g.free, reverse=True):
            dev = f"cuda:{gpu.index}"
            dt, why = _dtype_for(dev, dtype, m)
            if need(dt, window) <= gpu.free:
                return Choice(
                    dev, dt, t("gpu_most_free", gpu=gpu.name, free=gib(gpu.free), need=gib(need(dt, window)), why=why)
                )
            tried.append(t("gpu_has", dev=dev, free=gib(gpu.free)))
        if m.mps:
            dt, why = _dtype_for("mps", dtype, m)
            return Choice("mps", dt, t("mps_auto", why=why))
        dt, why = _dtype_for("cpu", dtype, m)
        lead = t("no_gpu") if not m.gpus else t("no_gpu_room", tried=", ".join(tried))
        return _on_cpu(
            dt, m, need, window, t("cpu_auto", lead=lead, ram=gib(m.cpu_available), limit=m.ram_limit, why=why)
        )
    if requested.startswith("cuda"):
        index = int(requested.split(":")[1]) if ":" in requested else None
        if not m.gpus:
            raise DeviceError(t("no_cuda", dev=requested))
        if index is None:
            index = max(m.gpus, key=lambda g: g.free).index
        if index >= len(m.gpus):
            raise DeviceError(t("few_gpus", dev=requested, n=len(m.gpus), last=len(m.gpus) - 1))
        gpu, dev = m.gpus[index], f"cuda:{index}"
        dt, why = _dtype_for(dev, dtype, m)
        if need(dt, window) > gpu.free:
            raise DeviceError(
                t("gpu_full", dev=dev, gpu=gpu.name, free=gib(gpu.free), need=gib(need(dt, window)), dtype=SHORT[dt])
            )
        return Choice(dev, dt, t("gpu_asked", gpu=gpu.name, free=gib(gpu.free), need=gib(need(dt, window)), why=why))
    if requested == "mps":
        if not m.mps:
            raise DeviceError(t("no_mps"))
        dt, why = _dtype_for("mps", dtype, m)
        return Choice("mps", dt, t("mps_asked", why=why))
    dt, why = _dtype_for("cpu", dtype, m)
    return _on_cpu(dt, m, need, window, t("cpu_asked", ram=gib(m.cpu_available), why=why), asked=True)


MIN_WINDOW = 1024  # below this a chat loses its thread within a few turns: better to say the RAM is short


def _on_cpu(dt: torch.dtype, m: Machine, need, window: int, reason: str, asked: bool = False) -> Choice:
    """The CPU with the whole window, or the largest halved window (>= MIN_WINDOW) whose KV cache fits."""
    tokens = window
    while need(dt, tokens) > m.cpu_available and tokens // 2 >= MIN_WINDOW:
        tokens //= 2
    if need(dt, tokens) > m.cpu_available:
        raise _short_of_ram(need(dt, window), dt, m, asked)
    if tokens == window:
        return Choice("cpu", dt, reason)
    return Choice("cpu", dt, reason + t("window_shrunk", n=tokens, full=window), window=tokens)


def _short_of_ram(need: int, dt: torch.dtype, m: Machine, asked: bool = False) -> DeviceError:
    return DeviceError(
        t(
            "short_of_ram",
            need=gib(need),
            dtype=SHORT[dt],
            ram=gib(m.cpu_available),
            limit=m.ram_limit,
            gpus=t("and_no_gpu") if m.gpus and not asked else "",
            what=t("raise_limit") if m.ram_limit else t("close_programs"),
        )
    )


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    try:  # Linux: this program's own peak (ru_maxrss would also count the parent it was started from)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024 / 1e9
    except (OSError, StopIteration, ValueError):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return rss / 1e9 if sys.platform == "darwin" else rss * 1024 / 1e9
