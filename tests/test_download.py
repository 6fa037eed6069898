"""The first run downloads the model from the hub with its progress shown, and GGUF models are converted once.
The hub is a local server in the hub's URL layout (tests/support/hub_server.py), so the real download code runs."""

import re
from pathlib import Path

import pytest

from tests.support.cli import leave, run_cli, spawn_cli
from tests.support.hub_server import serve

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not


@pytest.fixture
def hub(tiny42, tmp_path):
    server, url, log = serve({"42dot/tiny-42dot": tiny42})
    env = dict(HF_ENDPOINT=url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_XET="1")
    yield env, log
    server.shutdown()


def test_first_run_shows_the_download_then_loads_from_the_cache(hub, tmp_path):
    env, log = hub
    child = spawn_cli("--model-path", "42dot/tiny-42dot", "--max-new-tokens", "4", "--no-history", **env)
    # the bar: file, percent, bytes of total, [elapsed<left, rate]
    child.expect(r"model\.safetensors: +100%.*?\| *[\d.]+k/[\d.]+k \[\d\d:\d\d<\d\d:\d\d, +[\d.]+ ?[kMG]?B/s\]")
    child.expect("loaded in")
    leave(child)
    assert sum("model.safetensors" in line for line in log if line.startswith("GET")) == 1
    log.clear()
    again = run_cli(
        "--model-path",
        "42dot/tiny-42dot",
        "--max-new-tokens",
        "4",
        "--no-history",
        "--seed",
        "0",
        "--prompt",
        "안녕하세요",
        **env,
    )
    err = again.stderr.decode()
    assert again.returncode == 0, err
    assert "downloading" not in err and not any("model.safetensors" in line for line in log)  # from the cache


def test_download_off_a_terminal_is_one_line_per_file(hub, tiny42):
    env, _ = hub
    mb = (tiny42 / "model.safetensors").stat().st_size / 1e6  # the tokenizer trained here decides the size
    r = run_cli(
        "--model-path",
        "42dot/tiny-42dot",
        "--max-new-tokens",
        "4",
        "--no-history",
        "--seed",
        "0",
        "--prompt",
        "안녕하세요",
        **env,
    )
    err = r.stderr.decode()
    assert r.returncode == 0, err
    assert re.search(rf"^downloading model\.safetensors \({mb:.1f} MB\) from the Hugging Face hub$", err, re.M), err
    assert "\r" not in err and "Traceback" not in err


def test_gguf_is_converted_once_and_said(smollm2_gguf, tmp_path):
    import shutil

    gguf = tmp_path / smollm2_gguf.name  # a file of its own (the conversion is keyed by name, size and mtime);
    shutil.copy(smollm2_gguf, gguf)  # the cache stays the usual one, with its compiled kernels and measurements
    args = [
        "--model-path",
        str(gguf),
        "--temperature",
        "0",
        "--max-new-tokens",
        "12",
        "--no-history",
        "--prompt",
        "What is the capital of France?",
    ]
    first = run_cli(*args, timeout=300)
    said = re.search(
        r"converted the (\d+) MB GGUF model once to (.+?) \((\d+) MB of bfloat16 weights\); later starts",
        first.stderr.decode(),
    )
    try:
        assert first.returncode == 0 and said, first.stderr.decode()
        assert int(said.group(1)) == round(gguf.stat().st_size / 1e6) and int(said.group(3)) > 2 * int(said.group(1))
        assert "--quantize int4 keeps them small" in first.stderr.decode()  # a 98 MB download became 269 MB: said
        second = run_cli(*args)
        folder = Path(said.group(2))
        weights = next(folder.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:4096])  # a copy llm42 made, damaged: dropped, to be made again
        from llm42.model.gguf import from_converted
        from llm42.model.source import locate

        src, told = locate(str(gguf)), []
        assert from_converted(src, __import__("torch").bfloat16, told.append) is None and not folder.exists()
        assert told == [f"{folder} in llm42's cache was damaged; making it again"]
    finally:
        if said:
            shutil.rmtree(Path(said.group(2)).parent, ignore_errors=True)  # this file's key, every dtype
    err = second.stderr.decode()
    assert second.returncode == 0 and "loading the GGUF model as converted on an earlier start" in err, err
    assert "GGUF model once" not in err
    assert second.stdout == first.stdout  # the same model either way


def test_a_gguf_file_by_another_name_is_known_by_its_content(smollm2_gguf, tmp_path):
    """A renamed GGUF download (no .gguf suffix) is read as a GGUF; any other file is said to be no model."""
    import os

    from llm42.model.source import LoadError, locate

    renamed = tmp_path / "smollm2-download"
    os.symlink(smollm2_gguf, renamed)
    src = locate(str(renamed))
    assert src.gguf_file == "smollm2-download" and src.local and src.path == str(tmp_path)
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(LoadError, match="notes.txt is a file, but neither a model folder nor a .gguf file"):
        locate(str(tmp_path / "notes.txt"))
