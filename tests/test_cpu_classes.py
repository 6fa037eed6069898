"""The kernel and quantization tests again, as they run on CPU classes below this one: PyTorch forced down a level
(ATEN_CPU_CAPABILITY) and llm42's C kernels built for a lower target (LLM42_CPU_TARGET). A developer on an AVX512
machine then cannot break a laptop's AVX2 (PyTorch packs int4 differently there) or a CPU with no vector code."""

import platform
import subprocess
import sys

import pytest

from llm42.cpu.flags import cpu_flags
from tests.support.cli import ROOT, cli_env, run_cli

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not

NO_BF16 = {"ONEDNN_MAX_CPU_ISA": "AVX2"}  # oneDNN's bf16 then off too: the probe sees a CPU without bf16
# Each class reruns what depends on the kernels; saving and reloading (test_quantize's layer_by_layer) is the same
# tensor arithmetic on every class and runs once, in the main suite. The plain class checks llm42's plain-C kernels
# and PyTorch's default int4 packing (test_native, test_laid); the model-level checks run in the AVX2 class.
ONE_CALL = "tests/test_generate.py::test_a_step_in_one_call_gives_the_python_loop_s_bits"  # a step's layers in C
CLASSES = {
    # an Intel Core 12th-14th gen or AMD Zen 2/3 laptop: AVX2, FMA, F16C, no AVX512, no native bf16
    "avx2": (
        "avx2",
        "x86-64-v3",
        {"avx2", "fma", "f16c"},
        ["tests/test_native.py", "tests/test_laid.py", "tests/test_quantize.py", ONE_CALL, "-k", "not layer_by_layer"],
    ),
    # no vector code of llm42's (as on Arm, or any CPU its intrinsics do not cover); PyTorch's plain kernels
    "plain": ("default", "x86-64", set(), ["tests/test_native.py", "tests/test_laid.py", ONE_CALL]),
}


def _is_avx2_class() -> bool:
    """PyTorch runs its AVX2 kernels here and llm42's, built for this CPU, have no AVX512 to use (a Zen 3)."""
    import torch

    return torch.backends.cpu.get_cpu_capability() == "AVX2" and "avx512f" not in cpu_flags().split()


@pytest.mark.parametrize("name", CLASSES)
def test_kernels_and_quantization_on_a_lower_cpu_class(name):
    capability, target, needs, tests = CLASSES[name]
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"{target} is an x86 target; this CPU is {platform.machine()}")
    missing = needs - set(cpu_flags().split())
    if missing:
        pytest.skip(f"this CPU lacks {' '.join(sorted(missing))}: it cannot run the {name} class")
    if name == "avx2" and _is_avx2_class():
        pytest.skip("this CPU is of the AVX2 class itself: the main suite ran these tests on it")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env=cli_env(ATEN_CPU_CAPABILITY=capability, LLM42_CPU_TARGET=target, **NO_BF16),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_a_cpu_without_bf16_chats_in_bf16_weights_computed_in_fp32(smollm2):
    """The default on an AVX2 laptop: bf16 weights (half of fp32's memory), a prompt of more than WIDEN_ROWS
    tokens prefilled through fp32, steps on the bf16 weights; the reply is the model's."""
    if "avx2" not in cpu_flags().split():
        pytest.skip("this CPU lacks avx2")
    question = (
        "Please answer in one short sentence, and do not add anything else. " * 4 + "What is the capital of France?"
    )
    r = run_cli(
        "--model-path",
        str(smollm2),
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        "--prompt",
        question,
        ATEN_CPU_CAPABILITY="avx2",
        LLM42_CPU_TARGET="x86-64-v3",
        **NO_BF16,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert "bf16 weights, computed in fp32" in r.stderr.decode() and "Paris" in r.stdout.decode()


def test_without_a_c_compiler_pytorch_kernels_answer_and_debug_says_so(smollm2, tmp_path):
    """As on a Mac without Xcode's tools or a bare Arm board: no compiler, so no llm42 kernels; int4 then runs on
    PyTorch's own packing (made from llm42's codes), and --debug names the fallback in one line."""
    bare = tmp_path / "bin"
    bare.mkdir()
    r = run_cli(
        "--model-path",
        str(smollm2),
        "--quantize",
        "int4",
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        "--debug",
        "--prompt",  # a sentence to copy (asked for the capital, SmolLM2 in int4 answers "L'Étoile": a near tie)
        "Repeat after me: Paris is the capital of France.",
        PATH=str(bare),
        LLM42_CACHE=str(tmp_path / "c"),
    )
    assert r.returncode == 0, r.stderr.decode()
    assert "kernels: no C compiler (cc, gcc, clang or $CC): PyTorch's kernels run" in r.stderr.decode()
    assert "Paris is the capital of France" in r.stdout.decode()  # codes packed wrong would say something else
