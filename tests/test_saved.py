"""Saved quantized folders and the cache of models quantized once: written whole, checked when read, refused or
made again in one line, through the real CLI."""

import hashlib
import json
import os
import resource
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from llm42.cpu.layers import Int4Linear, unpack_int4
from llm42.model.saved import load_quantized
from tests.support.cli import run_cli
from tests.support.models import int4_step

pytestmark = pytest.mark.slow  # end to end: the full suite and CI run it, the quick tier does not

ASK = ["--temperature", "0", "--max-new-tokens", "12", "--no-history", "--prompt", "What is the capital of France?"]


@pytest.fixture(scope="module")
def saved(smollm2, tmp_path_factory):
    out = tmp_path_factory.mktemp("saved") / "smol-int8"
    r = run_cli("--model-path", str(smollm2), "--quantize", "int8", "--save-quantized", str(out), *ASK)
    assert r.returncode == 0 and "Paris" in r.stdout.decode(), r.stderr.decode()
    return out


def copy_of(folder, to):
    import shutil

    shutil.copytree(folder, to)
    return to


def test_a_saved_folder_has_a_manifest_and_plain_file_modes(saved):
    manifest = json.loads((saved / "llm42_quant.json").read_text())
    assert manifest["kind"] == "int8" and manifest["format"] == 4
    assert manifest["files"]["model.safetensors"]["size"] == (saved / "model.safetensors").stat().st_size
    assert len(manifest["files"]["model.safetensors"]["sha256"]) == 64
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in saved.iterdir()}
    assert len(set(modes.values())) == 1, modes  # model.safetensors as readable as config.json
    assert not [p for p in saved.parent.iterdir() if "partial" in p.name]


@pytest.mark.parametrize(
    "damage, why",
    [
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[: 1 << 20]),
            "model.safetensors is 1048576 bytes, its manifest says",
        ),
        (lambda d: (d / "model.safetensors").write_bytes(b""), "model.safetensors is 0 bytes"),
        (lambda d: (d / "llm42_quant.json").unlink(), "its llm42_quant.json is missing or damaged"),
        (lambda d: (d / "llm42_quant.json").write_text("[]"), "its llm42_quant.json is missing or damaged"),
    ],
)
def test_a_damaged_saved_folder_is_refused_in_one_line(saved, tmp_path, damage, why):
    folder = copy_of(saved, tmp_path / "copy")
    damage(folder)
    r = run_cli("--model-path", str(folder), *ASK)
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and not r.stdout.strip(), r.stdout
    assert err[-1].startswith(f"llm42: error: {folder} is damaged or incomplete") and why in err[-1], err
    assert "save it again with --quantize and --save-quantized" in err[-1]


def test_a_full_disk_while_saving_leaves_nothing_that_looks_like_a_model(smollm2, tmp_path):
    out = tmp_path / "out"

    def small_files():  # every file this process writes stops at 4 MB, as a nearly full disk does
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))

    r = run_cli(
        "--model-path",
        str(smollm2),
        "--quantize",
        "int8",
        "--save-quantized",
        str(out),
        *ASK,
        preexec_fn=small_files,
        LLM42_CACHE=str(tmp_path / "cache"),
    )
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and "Traceback" not in r.stderr.decode(), err
    assert err[-1].startswith(f"llm42: error: could not save the quantized model in {out}: ") and err[-1].endswith(
        "nothing was left there"
    ), err
    assert sorted(os.listdir(tmp_path)) == ["cache"] and not list((tmp_path / "cache").rglob("*.safetensors"))


def test_a_model_quantized_once_is_cached_and_a_damaged_cache_is_made_again(smollm2, tmp_path):
    env = {"LLM42_CACHE": str(tmp_path)}
    first = run_cli("--model-path", str(smollm2), "--quantize", "int8", *ASK, **env)
    assert first.returncode == 0 and "quantized to int8 once; kept in" in first.stderr.decode(), first.stderr.decode()
    second = run_cli("--model-path", str(smollm2), "--quantize", "int8", *ASK, **env)
    assert "int8 weights as quantized on an earlier start" in second.stderr.decode()
    assert second.stdout == first.stdout
    weights = next((tmp_path / "quantized").glob("*/model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:1000])  # a kill while it was written, or a bad disk
    third = run_cli("--model-path", str(smollm2), "--quantize", "int8", *ASK, **env)
    assert third.returncode == 0 and "was damaged; making it again" in third.stderr.decode(), third.stderr.decode()
    assert third.stdout == first.stdout


@pytest.mark.parametrize("args", [["--dtype", "bfloat16"], ["--quantize", "int8"]])
def test_an_unwritable_cache_costs_time_not_the_chat(smollm2, tmp_path, args):
    """The cache folder cannot be made (a file where a folder should be): the kernels are built in a temporary
    folder and measured again, the quantized model is kept in memory only; one line says so."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = run_cli("--model-path", str(smollm2), *args, *ASK, LLM42_CACHE=str(blocker / "cache"))
    err = r.stderr.decode()
    assert r.returncode == 0 and "Paris" in r.stdout.decode() and "Traceback" not in err, err
    assert f"llm42's cache folder {blocker / 'cache'} cannot be written" in err


def test_save_quantized_is_not_copied_into_the_cache_and_the_cache_is_bounded(smollm2, tmp_path):
    """--save-quantized DIR is the one copy (the cache keeps none beside it); quantized copies in the cache are
    bounded by $LLM42_MODEL_CACHE_GB, the least recently used removed first."""
    cache = tmp_path / "cache"
    out = tmp_path / "mine"
    r = run_cli(
        "--model-path", str(smollm2), "--quantize", "int8", "--save-quantized", str(out), *ASK, LLM42_CACHE=str(cache)
    )
    assert r.returncode == 0 and (out / "model.safetensors").is_file(), r.stderr.decode()
    assert not (cache / "quantized").exists() or not any((cache / "quantized").iterdir())
    first = run_cli("--model-path", str(smollm2), "--quantize", "int8", *ASK, LLM42_CACHE=str(cache))
    (int8,) = (cache / "quantized").iterdir()
    size = sum(f.stat().st_size for f in int8.iterdir())
    limit = str(1.2 * size / 2**30)  # room for the int8 copy, not for it and an int4 one beside it
    second = run_cli(
        "--model-path", str(smollm2), "--quantize", "int4", *ASK, LLM42_CACHE=str(cache), LLM42_MODEL_CACHE_GB=limit
    )
    assert first.returncode == 0 and second.returncode == 0, second.stderr.decode()
    (left,) = (cache / "quantized").iterdir()
    assert "-int4-" in left.name and not int8.exists()


def test_an_int4_folder_saved_in_the_older_layout_is_repacked_on_load(smollm2, tmp_path):
    """Format 3 kept a bf16 scale and zero per group of 32 (5 bits a weight); such a folder still loads: its weights
    are quantized again in today's layout as it is read (each within half of its new step of what the folder held),
    and the chat answers from it. Format 2 (PyTorch's packing) is refused in one line."""
    today = tmp_path / "int4"
    r = run_cli("--model-path", str(smollm2), "--quantize", "int4", "--save-quantized", str(today), *ASK)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr.decode()
    old = copy_of(today, tmp_path / "int4-format3")
    tensors, held = load_file(old / "model.safetensors"), {}
    for name in [k for k in tensors if k.endswith(".scales") and tensors[k].dtype == torch.uint8]:
        prefix = name[: -len(".scales")]
        layer = Int4Linear(tensors[prefix + ".qweight"], tensors.pop(name), 32)
        scale, zero = layer.unpacked()  # as format 3 held them: (q - 8) * scale + zero, both bf16
        sz = torch.stack([scale, scale * zero], -1).bfloat16().contiguous()
        tensors[prefix + ".scales_zeros"] = sz
        q = unpack_int4(layer.qweight).reshape(layer.out_features, -1, 32).float()
        held[prefix] = ((q - 8) * sz[..., :1].float() + sz[..., 1:].float()).reshape(layer.out_features, -1)
    assert held, "no int4 layer found"
    save_file(tensors, old / "model.safetensors", metadata={"format": "llm42-quantized"})
    manifest = json.loads((old / "llm42_quant.json").read_text())
    weights = (old / "model.safetensors").read_bytes()
    manifest["format"] = 3
    manifest["files"]["model.safetensors"] = {"size": len(weights), "sha256": hashlib.sha256(weights).hexdigest()}
    (old / "llm42_quant.json").write_text(json.dumps(manifest))

    again = run_cli("--model-path", str(old), *ASK)
    assert again.returncode == 0 and again.stdout.strip() and "Traceback" not in again.stderr.decode()
    model = load_quantized(old)
    for prefix, w in held.items():
        layer = model.get_submodule(prefix)
        assert isinstance(layer, Int4Linear) and layer.scales.shape == (w.shape[0], 4 + 2 * w.shape[1] // 32)
        step = int4_step(w, 32)
        assert ((layer.dequantize(torch.float32) - w).abs() <= step / 2 + step * 2**-12).all(), prefix

    manifest["format"] = 2  # PyTorch's own packing, which differs between CPUs
    (old / "llm42_quant.json").write_text(json.dumps(manifest))
    r = run_cli("--model-path", str(old), *ASK)
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and err[-1] == f"llm42: error: {old} was saved by another llm42 version (format 2); " + (
        "save it again with --quantize and --save-quantized"
    ), err
