"""The package's shape: its modules import each other without cycles, counting imports inside functions (an
import moved into a function to dodge a cycle still counts; one under `if TYPE_CHECKING:`, for annotations only,
never runs)."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "llm42"


def imports(path: Path, name: str, modules: set[str]) -> set[str]:
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    out = set()
    tree = ast.parse(path.read_text())
    for block in [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]:
        block.body = []  # names for annotations only: never imported when the program runs
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = (
                ".".join(package[: len(package) - node.level + 1] + [node.module or ""]) if node.level else node.module
            )
            base = base.rstrip(".")
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    files = {p: ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in PACKAGE.rglob("*.py")}
    names = {n.removesuffix(".__init__") for n in files.values()}
    graph = {n.removesuffix(".__init__"): imports(p, n.removesuffix(".__init__"), names) for p, n in files.items()}
    return {n: deps - {"llm42", "llm42.cpu", "llm42.bench", "llm42.i18n"} for n, deps in graph.items()}


def test_no_import_cycles():
    graph = import_graph()
    done, path, cycles = set(), [], []

    def visit(n):
        if n in path:
            cycles.append(path[path.index(n) :] + [n])
            return
        if n in done:
            return
        path.append(n)
        for m in sorted(graph.get(n, ())):
            visit(m)
        path.pop()
        done.add(n)

    for n in sorted(graph):
        visit(n)
    assert not cycles, [" -> ".join(c) for c in cycles]
    assert graph["llm42.gen.tuning"] and "llm42.cpu.build" in graph["llm42.cpu.native"]  # the reader sees real edges


def test_the_chat_never_imports_the_benchmark():
    graph = import_graph()
    chat = {n for n in graph if not n.startswith("llm42.bench")}
    assert not [(n, m) for n in chat for m in graph[n] if m.startswith("llm42.bench")]
    assert "llm42.bench.timing" in graph["llm42.bench.rows"]


def side(module: str) -> str:
    """The folder a module lies in ("chat", "gen", "model", "cpu", "bench", "i18n"), or "top"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else "top"


def test_the_folders_keep_their_boundaries():
    """What the tree promises: the chat side never imports the torch side; cpu/ imports nothing above it but the
    cache folder's path; loading and generation never import the chat; a short top level."""
    graph = import_graph()
    arrows = {(n, m) for n, deps in graph.items() for m in deps}
    assert not [(n, m) for n, m in arrows if side(n) == "chat" and side(m) in ("gen", "model", "cpu")]
    assert not [(n, m) for n, m in arrows if side(n) == "cpu" and side(m) != "cpu" and m != "llm42.paths"]
    assert not [(n, m) for n, m in arrows if side(n) in ("gen", "model", "cpu") and side(m) == "chat"]
    top = [p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]
    assert len(top) <= 14, sorted(top)
    assert ("llm42.chat.loop", "llm42.chat.ui") in arrows and ("llm42.gen.generate", "llm42.gen.decode") in arrows


def test_no_module_over_300_lines():
    long = {p.name: n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 300}
    assert not long


def test_the_code_is_formatted_and_lint_free():
    """pyproject.toml's ruff settings hold for every file (CI installs ruff from requirements-dev.txt)."""
    root = PACKAGE.parent
    for args in (["check", "--output-format", "concise", "."], ["format", "--check", "."]):
        done = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]


def test_every_file_a_docstring_or_comment_names_exists():
    """Prose that rots: a module that names `kernels.py` or `tests/soak.py` after they moved or went."""
    import re

    root = PACKAGE.parent
    files = [p for p in root.rglob("*") if p.is_file() and not {".git", ".venv"} & set(p.parts)]
    names, paths = {p.name for p in files}, {p.relative_to(root).as_posix() for p in files}
    stale = []
    for p in PACKAGE.rglob("*.py"):
        for ref in re.findall(r"(?<![\w.])((?:[\w-]+/)*[\w-]+\.(?:py|c))\b", p.read_text()):
            known = any(x.endswith(ref) for x in paths) if "/" in ref else ref in names
            if not known:
                stale.append(f"{p.relative_to(root)}: {ref}")
    assert not stale, stale


def test_pip_install_ships_every_package():
    """`pip install .` installs the packages pyproject.toml lists: every folder with an __init__.py is there."""
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found == listed
