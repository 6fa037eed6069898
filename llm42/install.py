"""`python -m llm42.install`: PyTorch's build for this machine, then requirements.txt (standard library only: it runs
before anything else is installed).

PyPI's Linux torch wheel is the CUDA build: about 3 GB with NVIDIA's libraries, which a CPU chat never uses. On a
Linux machine without an NVIDIA GPU torch comes from PyTorch's CPU-only index (about 0.2 GB) instead; with a GPU,
on macOS (whose wheel runs on Apple's GPU) and on Windows (whose PyPI wheel is CPU-only) from PyPI as usual. The GPU
is looked for in the driver's files, never by running nvidia-smi. Where PyTorch's index cannot be reached (a
machine that reaches only a PyPI mirror), that is found out in a second and torch comes from the usual index."""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SIZES = {"cpu": "about 0.2 GB", "pypi": "about 3 GB on Linux with NVIDIA's CUDA libraries, 0.1-0.3 GB elsewhere"}


def has_nvidia_gpu(root: Path = Path("/")) -> bool:
    """An NVIDIA driver is loaded (its /proc entry) or a device node is there."""
    return (root / "proc/driver/nvidia/version").exists() or any((root / "dev").glob("nvidia[0-9]*"))


def torch_build(system: str, nvidia: bool) -> str:
    """Which torch build a machine wants: "cpu" (PyTorch's CPU-only index) or "pypi" (the default wheel)."""
    return "cpu" if system == "Linux" and not nvidia else "pypi"


def pinned_torch(requirements: Path) -> str:
    """requirements.txt's torch line (its version pin), e.g. "torch==2.13.0"."""
    for line in requirements.read_text().splitlines():
        spec = line.split("#")[0].strip()
        if spec.startswith("torch") and spec[5:6] in "=<>!~ ":
            return spec
    return "torch"


def reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether the index's host answers a connection (a machine off the internet fails at once, on DNS)."""
    host = urlparse(url).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def installed(requirement: str) -> bool:
    """torch is already installed at the pinned version (any build)."""
    want = requirement.partition("==")[2]
    try:
        have = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return False
    return bool(want) and have.split("+")[0] == want


def plan(build: str, torch: str, requirements: list[Path], cpu_index_ok: bool, torch_there: bool) -> list[list[str]]:
    """The pip commands to run, in order."""
    pip = [sys.executable, "-m", "pip", "install"]
    steps = []
    if not torch_there:
        steps.append(pip + [torch] + (["--index-url", CPU_INDEX] if build == "cpu" and cpu_index_ok else []))
    steps.append(pip + [arg for r in requirements for arg in ("-r", str(r))])
    return steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llm42.install", description=__doc__.splitlines()[0])
    p.add_argument("-r", dest="extra", action="append", default=[], metavar="FILE", help="more requirements files")
    p.add_argument("-q", "--quiet", action="store_true", help="pass -q to pip")
    p.add_argument("--dry-run", action="store_true", help="print the pip commands and the build, run nothing")
    a = p.parse_args(argv)
    requirements = [ROOT / "requirements.txt", *(Path(f) for f in a.extra)]
    torch = pinned_torch(requirements[0])
    nvidia = has_nvidia_gpu()
    build = torch_build(platform.system(), nvidia)
    torch_there = installed(torch)
    cpu_index_ok = build == "cpu" and not torch_there and reachable(CPU_INDEX)
    why = (
        f"{torch} is already installed"
        if torch_there
        else f"the CPU-only build ({SIZES['cpu']}): no NVIDIA GPU on this Linux machine"
        if build == "cpu" and cpu_index_ok
        else "the package index's build: PyTorch's CPU-only index cannot be reached from here"
        if build == "cpu"
        else f"the package index's build ({SIZES['pypi']})"
        + (": an NVIDIA GPU is here" if nvidia else f" on {platform.system()}")
    )
    print(f"llm42.install: torch: {why}", file=sys.stderr)
    for cmd in plan(build, torch, requirements, cpu_index_ok, torch_there):
        if a.quiet:
            cmd.insert(4, "-q")
        if a.dry_run:
            print(" ".join(cmd[2:] if cmd[0] == sys.executable else cmd))
            continue
        done = subprocess.run(cmd, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        if done.returncode:
            print(f"llm42.install: error: {' '.join(cmd[2:])} failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
