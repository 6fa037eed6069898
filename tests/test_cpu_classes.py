"""The kernel and quantization tests again, as they run on CPU classes below this one: PyTorch forced down a level
(ATEN_CPU_CAPABILITY) and llm42's C kernels built for a lower target (LLM42_CPU_TARGET). A developer on an AVX512
machine then cannot break a laptop's AVX2 (PyTorch packs int4 differently there) or a CPU with no vector code."""

import platform
import subprocess
import sys

import pytest

from llm42.device import cpu_flags
from cli_helpers import ROOT, cli_env

CLASSES = {
    # an Intel Core 12th-14th gen or AMD Zen 2/3 laptop: AVX2, FMA, F16C, no AVX512, no native bf16
    "avx2": ("avx2", "x86-64-v3", {"avx2", "fma", "f16c"}, ["tests/test_native.py", "tests/test_quantize.py"]),
    # no vector code of llm42's (as on Arm, or any CPU its intrinsics do not cover); PyTorch's plain kernels
    "plain": ("default", "x86-64", set(), ["tests/test_native.py", "tests/test_quantize.py", "-k", "not cli"]),
}


@pytest.mark.parametrize("name", CLASSES)
def test_kernels_and_quantization_on_a_lower_cpu_class(name):
    capability, target, needs, tests = CLASSES[name]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"{target} is an x86 target; this CPU is {platform.machine()}")
    missing = needs - set(cpu_flags().split())
    if missing:
        pytest.skip(f"this CPU lacks {' '.join(sorted(missing))}: it cannot run the {name} class")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT,
                          env=cli_env(ATEN_CPU_CAPABILITY=capability, LLM42_CPU_TARGET=target), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
