"""The errors llm42 explains to its user: one line each, turned into output once, at the CLI's edge."""

from __future__ import annotations


class Llm42Error(Exception):
    """A problem the message explains (what was wrong, what to do); `exit_code` is the CLI's status."""

    exit_code = 1


class UsageError(Llm42Error, ValueError):
    """A user mistake in a flag, a command or a message: exit code 2."""

    exit_code = 2


# what llm42 imports (the module names of requirements.txt's packages)
NEEDED = ("torch", "transformers", "tokenizers", "safetensors", "psutil", "rich", "prompt_toolkit", "platformdirs")


def missing_packages(e: ModuleNotFoundError) -> str | None:
    """One line for an import of a package llm42 needs that is not installed (run outside its virtual environment,
    or before installing): which are missing and the command that installs them. None for any other module."""
    import importlib.util

    if (e.name or "").split(".")[0] not in NEEDED:
        return None
    gone = [name for name in NEEDED if importlib.util.find_spec(name) is None] or [e.name]
    return (
        f"llm42: error: missing Python packages: {', '.join(gone)} (is llm42's virtual environment active?); "
        "install them with: python -m llm42.install"
    )
