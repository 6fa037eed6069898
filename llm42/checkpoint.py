"""Reading safetensors checkpoints tensor by tensor with plain reads (no mmap).

A memory-mapped file counts every page it has touched in the process's resident memory until it
is closed; reading each tensor into its own buffer lets a layer converted and dropped really go."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

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


class Checkpoint:
    """The tensors of one safetensors file or of a sharded set (model.safetensors.index.json)."""

    def __init__(self, folder: str | Path, filename: str = "model.safetensors"):
        folder = Path(folder)
        index = folder / f"{filename}.index.json"
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else [filename]
        self.where: dict[str, tuple[Path, dict, int]] = {}
        for name in files:
            path = folder / name
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
            header.pop("__metadata__", None)
            for key, info in header.items():
                self.where[key] = (path, info, 8 + n)

    def keys(self) -> list[str]:
        return list(self.where)

    def __contains__(self, key: str) -> bool:
        return key in self.where

    def get(self, key: str) -> torch.Tensor:
        path, info, base = self.where[key]
        start, end = info["data_offsets"]
        buf = bytearray(end - start)
        with open(path, "rb") as f:
            f.seek(base + start)
            f.readinto(buf)
        dtype = DTYPES[info["dtype"]]
        if not buf:
            return torch.empty(info["shape"], dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(info["shape"])
