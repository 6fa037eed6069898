"""Optional packages (matplotlib for charts, llama-cpp-python for the benchmark): whether one is there to use."""

from __future__ import annotations

import importlib


def can_import(name: str) -> bool:
    """Whether `name` imports (a package that is present but broken counts as missing)."""
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False
