"""A hub model fetched into the hub's cache, with each file's progress (bytes, total, rate, time left)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..i18n import t
from .source import (
    ALWAYS,
    PICKLES,
    WEIGHTS,
    LoadError,
    Source,
    first_line,
    has_weights,
    hint,
    hub_reachable,
    offline_error,
)


def fetch(src: Source) -> Source:
    """A hub model as a folder on disk: the hub cache's copy, or downloaded now with each file's progress
    (bytes, total, rate, time left) on stderr. Safetensors only, unless the repo has none and pickles are allowed."""
    if src.local:
        return src
    from huggingface_hub import snapshot_download

    kw = dict(repo_id=src.path, revision=src.revision)
    try:
        folder = Path(snapshot_download(**kw, local_files_only=True, allow_patterns=[*ALWAYS, *WEIGHTS]))
        if has_weights(folder):
            return replace(src, path=str(folder), local=True)
    except Exception:
        pass  # not (all) in the cache
    if not hub_reachable():
        raise offline_error(src)
    from fnmatch import fnmatch

    from huggingface_hub import HfApi, hf_hub_download

    try:
        files = [s.rfilename for s in HfApi().model_info(src.path, revision=src.revision).siblings or []]
        weights = list(WEIGHTS)
        if not any(f.endswith(".safetensors") for f in files):
            pickles = sorted(f for f in files if f.endswith(tuple(p[1:] for p in PICKLES)))
            if pickles and not src.allow_pickle:
                raise LoadError(t("pickle_only", path=src.name, file=pickles[0]))
            weights = list(PICKLES)
        extra = ["*.py"] if src.trust_remote_code else []
        wanted = [f for f in files if any(fnmatch(f, p) for p in [*ALWAYS, *weights, *extra])]
        folder = None
        for f in sorted(wanted, key=lambda f: any(fnmatch(f, p) for p in weights)):  # small files first
            big = any(fnmatch(f, p) for p in weights)
            path = hf_hub_download(**kw, filename=f, tqdm_class=_progress_bar() if big else silent())
            folder = Path(path[: -len(f)])
    except LoadError:
        raise
    except Exception as e:
        raise LoadError(t("cannot_load", name=src.name, why=first_line(e), hint=hint(e))) from None
    if folder is None or not has_weights(folder):
        raise LoadError(t("cannot_load", name=src.name, why=t("no_weights"), hint=""))
    return replace(src, path=str(folder), local=True)


def _progress_bar():
    """A download's progress on the terminal: file, bytes of total, rate, time left. Off the terminal
    (a script's log) one line when the file starts instead of a bar redrawn in place."""
    import sys

    from tqdm.auto import tqdm

    class Bar(tqdm):
        def __init__(self, *args, **kw):
            kw.pop("name", None)
            kw["desc"] = str(kw.get("desc") or "").rsplit("/", 1)[-1]  # the file's name, not its URL
            kw.update(disable=False, file=sys.stderr, dynamic_ncols=True, mininterval=0.25)
            if not sys.stderr.isatty():
                kw.update(disable=True)
                print(t("downloading", file=kw.get("desc", "?"), size=_size(kw.get("total"))), file=sys.stderr)
            super().__init__(*args, **kw)

    return Bar


def _size(n: int | None) -> str:
    return "?" if not n else f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def silent():
    from tqdm.auto import tqdm

    class Silent(tqdm):
        def __init__(self, *args, **kw):
            kw.pop("name", None)
            super().__init__(*args, **{**kw, "disable": True})

    return Silent
