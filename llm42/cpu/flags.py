"""What the CPU can do, read from the OS and PyTorch: its instruction sets, bf16/fp16 arithmetic, the cores this
process may use. The kernels, the measured choices and the device line all read it here (nothing above cpu/)."""

from __future__ import annotations

import functools
import os
import platform
import sys
from pathlib import Path

import torch


def capability() -> str:
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return ""


def cpu_class(flags: str, capability: str, bf16: bool) -> str:
    """What PyTorch's kernels (its capability: "AVX512", "AVX2", ...; ATEN_CPU_CAPABILITY lowers it) and oneDNN use
    on this CPU, named as its maker does: "AVX512-BF16, VNNI, AMX" on a Sapphire Rapids, "AVX2" on a Zen 3."""
    have = set(flags.split())
    if capability.startswith("AVX512"):
        out = ["AVX512-BF16" if bf16 and "avx512_bf16" in have else "AVX512"]
        out += ["VNNI"] if "avx512_vnni" in have else []
        out += ["AMX"] if bf16 and "amx_bf16" in have else []
        return ", ".join(out)
    if capability in ("AVX2", "SVE256", "SVE"):
        return capability
    if "asimd" in have:  # Arm
        return "NEON" + (", bf16" if "bf16" in have and bf16 else "") + (", fp16" if "fphp" in have else "")
    return capability.lower() if capability and capability != "DEFAULT" else ""


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform says. For people; never a cache key."""
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The instruction sets this CPU has, as one string: what compiled kernels and measured choices depend on
    (x86 "flags", Arm "Features"; elsewhere the architecture and processor names)."""
    try:
        line = next(line for line in cpuinfo.read_text().splitlines() if line.startswith(("flags", "Features")))
        return " ".join(sorted(line.split(":", 1)[1].split()))
    except (OSError, StopIteration):
        return f"{platform.machine()} {platform.processor()}"


@functools.cache
def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 (AVX512-BF16/AMX on x86, or Arm's bf16)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_supports_fp16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True on Arm CPUs with fp16 arithmetic (FEAT_FP16): every Apple M-series chip, most Armv8.2+ cores."""
    if platform.machine().lower() not in ("arm64", "aarch64"):
        return False
    if sys.platform == "darwin":
        return True
    try:
        features = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("Features")).split()
    except (OSError, StopIteration):
        return False
    return "fphp" in features and "asimdhp" in features


def cpu_threads() -> int:
    """The cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
