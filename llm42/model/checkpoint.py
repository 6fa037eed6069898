"""Reading safetensors checkpoints tensor by tensor: with plain reads into memory PyTorch allocated, or as views of
a private mapping of the file where the loader uses a tensor only to make another (cpu/memory.py: it releases each
one's pages once used and copies what it keeps).

A read tensor's buffer is its own: a layer converted and dropped really goes."""

from __future__ import annotations

import contextlib
import json
import struct
from pathlib import Path

import torch

from ..cpu.memory import mapped, release

DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class Damaged(ValueError):
    """A safetensors file whose header or length does not add up (cut short, overwritten)."""


class Checkpoint:
    """The tensors of one safetensors file or of a sharded set (model.safetensors.index.json)."""

    def __init__(self, folder: str | Path, filename: str = "model.safetensors", mapped: bool = False):
        folder = Path(folder)
        self.mapped = mapped
        self.maps: dict[Path, torch.Tensor] = {}  # each file's mapping (uint8), made on first use
        index = folder / f"{filename}.index.json"
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else [filename]
        self.where: dict[str, tuple[Path, dict, int]] = {}
        for name in files:
            path = folder / name
            size = path.stat().st_size
            with open(path, "rb") as f:
                head = f.read(8)
                n = struct.unpack("<Q", head)[0] if len(head) == 8 else size
                if n > size - 8:
                    raise Damaged(f"{name} is shorter than its header says")
                try:
                    header = json.loads(f.read(n))
                except ValueError:
                    raise Damaged(f"{name} has no readable header") from None
            if not isinstance(header, dict):
                raise Damaged(f"{name} has a malformed header")
            header.pop("__metadata__", None)
            for key, info in header.items():
                try:
                    end = 8 + n + int(info["data_offsets"][1])
                except (KeyError, TypeError, IndexError, ValueError):
                    raise Damaged(f"{name} has a malformed header") from None
                if end > size:
                    raise Damaged(f"{name} is cut short: {key} lies past its end")
                self.where[key] = (path, info, 8 + n)

    def keys(self) -> list[str]:
        return list(self.where)

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def get(self, key: str, dtype: torch.dtype | None = None, device: str | None = None) -> torch.Tensor:
        """The tensor, in `dtype` where it is floating point and on `device` (None: as stored). In a mapped checkpoint
        a tensor kept as stored is a view of its file's mapping (the caller lays it out, releases or owns it); one
        converted or moved is a copy, the view's pages released."""
        t = self._read(key)
        out = t.to(device=device, dtype=dtype if t.is_floating_point() else None)
        if out is not t:
            release(t)  # not read again
        return out

    def _read(self, key: str) -> torch.Tensor:
        """The tensor as stored: a view of the mapping, else read straight into memory PyTorch allocated (aligned as
        its kernels expect: an fp32 product over a weight at another alignment can sum in another order)."""
        path, info, base = self.where[key]
        start, end = info["data_offsets"]
        out = torch.empty(info["shape"], dtype=DTYPES[info["dtype"]], device="meta")
        if out.numel() * out.element_size() != end - start:
            raise Damaged(f"{path.name}: {key} has {end - start} bytes for {out.numel() * out.element_size()}")
        if self.mapped and out.numel():
            if path not in self.maps:
                self.maps[path] = mapped(path)
            raw = self.maps[path][base + start : base + end]
            with contextlib.suppress(RuntimeError):  # a tensor at an offset its dtype cannot view: read below
                return raw.view(out.dtype).view(out.shape)
        out = torch.empty(out.shape, dtype=out.dtype)
        raw = out.view(-1).view(torch.uint8)
        if raw.numel():
            with open(path, "rb") as f:
                f.seek(base + start)
                f.readinto(memoryview(raw.numpy()))
        return out
