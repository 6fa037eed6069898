"""How llm42's C kernels (kernels.c) are compiled for this CPU, and what the built library depends on."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .flags import cpu_flags

SOURCE = Path(__file__).parent / "kernels.c"
# no errno from libm, no floating-point exception flags kept (nothing reads them): loops that call floorf or compare
# floats then vectorize
MATH = ("-fno-math-errno", "-fno-trapping-math")


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def target() -> str:
    """What the kernels are built for: this CPU ("native"), or a named class, e.g. LLM42_CPU_TARGET=x86-64-v3
    (AVX2, FMA, F16C: a laptop without AVX512) or x86-64 (plain C, as on a CPU llm42 has no vector code for)."""
    return os.environ.get("LLM42_CPU_TARGET", "native")


def build(out: Path, cc: str, arch: str = "native") -> bool:
    """Compile; OpenMP if the compiler has it (Apple's clang does not: one thread then). For this CPU, -march=native,
    else -mcpu=native (Apple's clang on Arm), else the compiler's default target."""
    arches = [[f"-march={arch}"]] if arch != "native" else [["-march=native"], ["-mcpu=native"], []]
    for flags in ([*a, *omp] for a in arches for omp in (["-fopenmp"], [])):
        cmd = [cc, "-O3", *flags, *MATH, "-shared", "-fPIC", str(SOURCE), "-o", str(out), "-lm"]
        try:
            if subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0:
                return True
        except (OSError, subprocess.TimeoutExpired):
            return False
    return False


def key(cc: str, arch: str) -> str:
    """What the built library depends on: the source, the compiler (its resolved file), the target, and the CPU's
    instruction sets (never its name: two CPUs sold under one name may differ)."""
    path = shutil.which(cc) or cc
    try:
        real = os.path.realpath(path)
        stamp = f"{real}|{os.stat(real).st_size}|{os.stat(real).st_mtime_ns}"
    except OSError:
        stamp = path
    return hashlib.sha256(SOURCE.read_bytes() + f"{stamp}|{arch}|{cpu_flags()}|{sys.platform}".encode()).hexdigest()[
        :16
    ]
