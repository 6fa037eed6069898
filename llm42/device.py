"""Device and dtype choice: probe the machine, estimate the model's memory, decide."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import torch

GiB = 1024**3
DTYPE_BYTES = {torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}
DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


class DeviceError(RuntimeError):
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


@dataclass
class Choice:
    device: str  # "cpu", "cuda:0", "mps"
    dtype: torch.dtype
    reason: str


def probe() -> Machine:
    """Ask psutil and torch; never shells out."""
    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            gpus.append(Gpu(i, torch.cuda.get_device_name(i), free, total, torch.cuda.is_bf16_supported()))
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    ram, limit = available_ram()
    return Machine(ram, cpu_supports_bf16(), gpus, mps, limit)


def available_ram() -> tuple[int, str]:
    """Bytes this process may still use, and what limits them: the machine's free RAM, a container's
    cgroup limit (psutil reports the host's RAM inside Docker), or an address-space limit (ulimit -v)."""
    limits = [(psutil.virtual_memory().available, "")]
    room = cgroup_room()
    if room is not None:
        limits.append((room, " under this container's (cgroup's) memory limit"))
    try:
        import resource
    except ImportError:  # Windows
        return min(limits)
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY:
        limits.append((max(soft - psutil.Process().memory_info().vms, 0), " under ulimit -v"))
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


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 (AVX512-BF16/AMX on x86, or Arm's bf16)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
        return DTYPE_NAMES[requested], f"{requested} as asked"
    if device.startswith("cuda"):
        gpu = m.gpus[int(device.split(":")[1])]
        return (torch.bfloat16, "bf16 on this GPU") if gpu.bf16 else (torch.float16, "fp16 (no bf16 on this GPU)")
    if device == "mps":
        return torch.float16, "fp16 on Apple GPU"
    if m.cpu_bf16:
        return torch.bfloat16, "bf16, which this CPU supports natively"
    return torch.float32, "fp32: this CPU has no native bf16"


def choose(requested: str, dtype: str, m: Machine, need: Callable[[torch.dtype], int]) -> Choice:
    """Pick device and dtype. `need(dtype)` gives the bytes the model needs in that dtype."""
    if requested == "auto":
        gpus = sorted(m.gpus, key=lambda g: g.free, reverse=True)
        tried = []
        for gpu in gpus:
            dev = f"cuda:{gpu.index}"
            dt, why = _dtype_for(dev, dtype, m)
            if need(dt) <= gpu.free:
                return Choice(dev, dt, f"{gpu.name} has the most free memory ({gib(gpu.free)} free, "
                              f"{gib(need(dt))} needed); {why}")
            tried.append(f"{dev} has {gib(gpu.free)} free")
        if m.mps:
            dt, why = _dtype_for("mps", dtype, m)
            return Choice("mps", dt, f"Apple GPU (MPS) available; {why}")
        dt, why = _dtype_for("cpu", dtype, m)
        if need(dt) <= m.cpu_available:
            lead = "no GPU found" if not m.gpus else "no GPU has room (" + ", ".join(tried) + ")"
            return Choice("cpu", dt, f"{lead}; CPU has {gib(m.cpu_available)} RAM available{m.ram_limit}; {why}")
        raise _short_of_ram(need(dt), dt, m)
    if requested.startswith("cuda"):
        index = int(requested.split(":")[1]) if ":" in requested else None
        if not m.gpus:
            raise DeviceError(f"--device {requested}: no CUDA GPU is visible to PyTorch; use --device auto or cpu")
        if index is None:
            index = max(m.gpus, key=lambda g: g.free).index
        if index >= len(m.gpus):
            raise DeviceError(f"--device {requested}: only {len(m.gpus)} CUDA GPU(s) exist (cuda:0..cuda:{len(m.gpus) - 1})")
        gpu, dev = m.gpus[index], f"cuda:{index}"
        dt, why = _dtype_for(dev, dtype, m)
        if need(dt) > gpu.free:
            raise DeviceError(f"{dev} ({gpu.name}) has {gib(gpu.free)} free but the model needs about "
                              f"{gib(need(dt))} in {SHORT[dt]}; free GPU memory or use --device auto")
        return Choice(dev, dt, f"{gpu.name} as asked ({gib(gpu.free)} free, {gib(need(dt))} needed); {why}")
    if requested == "mps":
        if not m.mps:
            raise DeviceError("--device mps: Apple's MPS backend is not available here; use --device auto or cpu")
        dt, why = _dtype_for("mps", dtype, m)
        return Choice("mps", dt, f"Apple GPU as asked; {why}")
    dt, why = _dtype_for("cpu", dtype, m)
    if need(dt) > m.cpu_available:
        raise _short_of_ram(need(dt), dt, m, asked=True)
    return Choice("cpu", dt, f"CPU as asked ({gib(m.cpu_available)} RAM available); {why}")


def _short_of_ram(need: int, dt: torch.dtype, m: Machine, asked: bool = False) -> DeviceError:
    gpus = " and no GPU has room" if m.gpus and not asked else ""
    what = "raise that limit" if m.ram_limit else "close other programs"
    return DeviceError(f"the model needs about {gib(need)} in {SHORT[dt]} but only {gib(m.cpu_available)} RAM is "
                       f"available{m.ram_limit}{gpus}; {what} or try --quantize int8")
