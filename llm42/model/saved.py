"""Saved quantized folders: `--save-quantized DIR`, and the cache of models quantized once (a later start with the
same `--quantize` loads them in seconds instead of quantizing again).

A folder is written whole or not at all: under a temporary name, its manifest (format, kind, layers, each file's
size and SHA-256) written last, then renamed into place. It is checked when read (the manifest, every file's
size), and refused in one line naming the folder where the check fails; a cached one is made again."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from ..cpu.layers import Int4Linear, Int8Linear
from ..cpu.memory import release_free_memory
from ..errors import Llm42Error
from ..i18n import t
from ..paths import cache_dir, trim_models, used
from .quantize import finish, place, quantize_checkpoint, skeleton

QUANT_FILE = "llm42_quant.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = 4  # 4: int4 scales in 8 bits (3: a bf16 scale and zero per group, repacked on load; 2 held PyTorch's
# packing, which differs between CPUs); a manifest
READ = (3, FORMAT)  # the formats a folder is read in


class SavedError(Llm42Error):
    """A saved quantized folder that cannot be used (damaged, another version) or written (a full disk)."""


def _manifest(path: Path) -> dict | None:
    try:
        meta = json.loads((Path(path) / QUANT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def saved_kind(path: str | Path) -> str | None:
    """ "int8" or "int4" for a folder written by --save-quantized, else None."""
    kind = (_manifest(Path(path)) or {}).get("kind")
    return kind if kind in ("int8", "int4") else None


def looks_saved(path: str | Path) -> bool:
    """A folder llm42 saved quantized: its marker, or (the marker lost) the weights file's own header says so."""
    path = Path(path)
    if (path / QUANT_FILE).exists():
        return True
    try:
        with open(path / WEIGHTS_FILE, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size)) if 0 < size < 1 << 26 else {}
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and (header.get("__metadata__") or {}).get("format") == "llm42-quantized"


def check(path: Path) -> dict:
    """The manifest of a saved folder, after checking it and every file it lists; SavedError naming what is wrong."""
    meta = _manifest(path)
    if meta is None:
        raise SavedError(t("saved_damaged", path=path, why=t("no_manifest", file=QUANT_FILE)))
    if meta.get("format") not in READ:
        raise SavedError(t("saved_other_version", path=path, format=meta.get("format")))
    files = meta.get("files")
    if not isinstance(files, dict) or WEIGHTS_FILE not in files or not isinstance(meta.get("layers"), dict):
        raise SavedError(t("saved_damaged", path=path, why=t("no_manifest", file=QUANT_FILE)))
    for name, spec in files.items():
        try:
            size = (path / name).stat().st_size
        except OSError:
            raise SavedError(t("saved_damaged", path=path, why=t("file_missing", file=name))) from None
        if not isinstance(spec, dict) or size != spec.get("size"):
            expected = spec.get("size") if isinstance(spec, dict) else "?"
            raise SavedError(t("saved_damaged", path=path, why=t("file_size", file=name, size=size, expected=expected)))
    return meta


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            h.update(block)
    return h.hexdigest()


def save_quantized(model: nn.Module, tokenizer, out: str | Path) -> None:
    """A folder that `--model-path` loads directly, with no bf16 weights and no re-quantization. All or nothing:
    a full disk leaves no folder behind (SavedError with the reason)."""
    from safetensors.torch import save_file

    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        tensors, layers = {}, {}
        for prefix, module in model.named_modules():
            if isinstance(module, (Int8Linear, Int4Linear)):
                layers[prefix] = {
                    "kind": "int8" if isinstance(module, Int8Linear) else "int4",
                    "group": getattr(module, "group", None),
                    "in_features": module.in_features,
                }
                for k, v in module.export().items():
                    tensors[f"{prefix}.{k}"] = v.contiguous()
        quantized = tuple(f"{p}." for p in layers)
        for k, v in model.state_dict().items():
            if not k.startswith(quantized):
                tensors[k] = v.contiguous()
        save_file(tensors, tmp / WEIGHTS_FILE, metadata={"format": "llm42-quantized"})
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        mode = _file_mode()
        files = {}
        for f in sorted(tmp.iterdir()):
            os.chmod(f, mode)  # safetensors writes 0600; a saved model is as readable as the other files
            files[f.name] = {"size": f.stat().st_size, "sha256": _sha256(f)}
        manifest = {"format": FORMAT, "kind": model.llm42_quantize, "layers": layers, "files": files}
        with open(tmp / QUANT_FILE, "w") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp / QUANT_FILE, mode)
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        tmp.rename(out)
    except Exception as e:  # a full disk shows up as OSError, or as safetensors' own error
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) or type(e).__name__ == "SafetensorError":
            raise SavedError(t("save_failed", path=out, why=getattr(e, "strerror", None) or str(e).strip())) from None
        raise


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def load_quantized(path: str | Path, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """A folder written by save_quantized, checked first: skeleton, then the saved tensors, nothing re-quantized."""
    from .checkpoint import Checkpoint

    path = Path(path)
    meta = check(path)
    model, config = skeleton(path, dtype)
    layers = meta["layers"]
    ckpt = Checkpoint(path, WEIGHTS_FILE, mapped=True)  # copied out of the mapping by `finish`
    names = ckpt.keys()

    def build(prefix: str, t: dict[str, torch.Tensor]) -> nn.Module:
        spec = layers[prefix]
        if spec["kind"] == "int8":
            return Int8Linear(t["qweight"], t["scales"], t.get("bias"))
        if "scales_zeros" in t:  # format 3: its numbers quantized again in today's layout (seconds for 1.3 B weights)
            return Int4Linear.from_weight(_format3(t["qweight"], t["scales_zeros"], spec["group"]), spec["group"],
                                          t.get("bias"))  # fmt: skip
        return Int4Linear(t["qweight"], t["scales"], spec["group"], t.get("bias"))

    for i, prefix in enumerate(layers):
        tensors = {k[len(prefix) + 1 :]: ckpt.get(k) for k in names if k.startswith(prefix + ".")}
        place(model, prefix, build(prefix, tensors))
        if i % 16 == 15:
            release_free_memory()
    done = tuple(f"{p}." for p in layers)
    rest = {k: ckpt.get(k) for k in names if not k.startswith(done)}
    return finish(model, config, path, rest, meta["kind"])


def _format3(qweight: torch.Tensor, scales_zeros: torch.Tensor, group: int) -> torch.Tensor:
    """A format-3 int4 weight as fp32 [n, k]: (q - 8) * scale + zero per group, bf16 scale and zero."""
    from ..cpu.layers import unpack_int4

    n = qweight.shape[0]
    q = unpack_int4(qweight).reshape(n, -1, group).float()
    scale, zero = scales_zeros.float().unsqueeze(-2).unbind(-1)  # [n, k/g, 1]
    return ((q - 8) * scale + zero).reshape(n, -1)


def cached_folder(path: str | Path, kind: str, dtype: torch.dtype) -> Path:
    """Where a local checkpoint, quantized once, is kept: keyed by the folder, its weights' sizes and times."""
    path = Path(path).resolve()
    stamp = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in path.glob("*.safetensors"))
    key = hashlib.sha256(f"{path}|{stamp}|{dtype}|{FORMAT}".encode()).hexdigest()[:16]
    return cache_dir() / "quantized" / f"{path.name}-{kind}-{key}"


def quantized(path: str | Path, kind: str, dtype: torch.dtype, info=lambda text: None, keep: bool = True) -> nn.Module:
    """A local checkpoint quantized to `kind`: from the cache when it was quantized before (and the cached folder
    checks out), else quantized layer by layer and kept for the next start (without the cache, when it cannot
    be written: said in one line); not kept where `keep` is False (--save-quantized writes the copy the user
    keeps, and the cache would hold a second)."""
    folder = cached_folder(path, kind, dtype)
    if folder.is_dir():
        try:
            model = load_quantized(folder, dtype)
            used(folder)
            info(t("quantized_cached", kind=kind, path=folder))
            return model
        except SavedError:
            info(t("cache_remade", path=folder))
            shutil.rmtree(folder, ignore_errors=True)
    model = quantize_checkpoint(path, kind, dtype)
    if not keep:
        return model
    try:
        save_quantized(model, None, folder)
        trim_models(keep=folder)
        info(t("quantized_kept", kind=kind, path=folder))
    except SavedError as e:
        info(t("quantized_not_kept", why=str(e)))
    return model
