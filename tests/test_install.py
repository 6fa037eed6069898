"""The set-up command asks for the torch build that fits the machine: CPU-only on Linux without an NVIDIA GPU."""

import subprocess
import sys

from llm42.install import CPU_INDEX, has_nvidia_gpu, pinned_torch, plan, torch_build
from tests.conftest import ROOT


def test_linux_without_an_nvidia_gpu_gets_the_cpu_build_and_others_the_package_index_one():
    assert torch_build("Linux", nvidia=False) == "cpu"
    assert torch_build("Linux", nvidia=True) == "pypi"  # PyPI's Linux wheel is the CUDA build
    assert torch_build("Darwin", nvidia=False) == "pypi"  # runs on Apple's GPU (MPS)
    assert torch_build("Windows", nvidia=False) == "pypi"  # PyPI's Windows wheel is CPU-only already


def test_an_nvidia_gpu_is_found_by_its_driver_files(tmp_path):
    assert not has_nvidia_gpu(tmp_path)
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "nvidia0").touch()
    assert has_nvidia_gpu(tmp_path)
    other = tmp_path / "other"
    (other / "proc/driver/nvidia").mkdir(parents=True)
    (other / "proc/driver/nvidia/version").write_text("NVRM version: ...")
    assert has_nvidia_gpu(other)


def test_the_pip_commands_for_each_case():
    torch = pinned_torch(ROOT / "requirements.txt")
    assert torch.startswith("torch==")
    reqs = [ROOT / "requirements.txt"]
    cpu = plan("cpu", torch, reqs, cpu_index_ok=True, torch_there=False)
    assert cpu[0][-3:] == [torch, "--index-url", CPU_INDEX] and cpu[1][-2:] == ["-r", str(reqs[0])]
    # PyTorch's index out of reach (a machine that reaches only a PyPI mirror): the pinned torch from there
    assert plan("cpu", torch, reqs, cpu_index_ok=False, torch_there=False)[0][-1] == torch
    assert plan("pypi", torch, reqs, cpu_index_ok=False, torch_there=False)[0][-1] == torch
    assert len(plan("cpu", torch, reqs, cpu_index_ok=True, torch_there=True)) == 1  # torch is there: requirements only


def test_the_command_says_what_it_chose_in_one_line_and_runs_nothing_on_a_dry_run():
    r = subprocess.run(
        [sys.executable, "-m", "llm42.install", "--dry-run", "-r", "requirements-dev.txt"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("llm42.install: torch: ")
    assert r.stdout.splitlines()[-1].endswith("requirements-dev.txt") and "pip install" in r.stdout
