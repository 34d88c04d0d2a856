"""The package's shape: no import circle, no reaching into another part's private names, short functions.

Read from the source (``ast``), every import counted, also those inside functions: a circle through a lazy import is
still a circle for whoever reads the code. Modules of one subpackage (``cache/``, ``eval/``, ...) may share private
names; the modules at the package root and different subpackages use each other's public names only.
"""

import ast
from pathlib import Path

import kfgrpo

ROOT = Path(kfgrpo.__file__).parent
MAX_FUNCTION_LINES = 80


def _modules(root: Path = ROOT) -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is a package's __init__)}``."""
    out = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _imports(modules):
    """``(importer, imported module, imported name or None)`` for every import of a kfgrpo module."""
    for name, (path, is_pkg) in modules.items():
        here = name.split(".") if is_pkg else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                if target.split(".")[0] != "kfgrpo":
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    yield (name, sub, None) if sub in modules else (name, target, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "kfgrpo":
                        yield name, alias.name, None


def _package_of(name: str, modules) -> str:
    return name if modules[name][1] else name.rpartition(".")[0]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def import_problems(root: Path = ROOT) -> tuple[list[list[str]], list[str]]:
    """The package's import circles and its cross-part private imports."""
    modules = _modules(root)
    edges: dict[str, set[str]] = {}
    private = []
    for importer, target, imported in _imports(modules):
        if target not in modules:
            continue
        if target != importer:
            edges.setdefault(importer, set()).add(target)
        if imported and imported.startswith("_") and not imported.startswith("__"):
            part = _package_of(target, modules)
            if part != _package_of(importer, modules) or part == root.name:
                private.append(f"{importer} imports {target}.{imported}")
    return _cycles(edges), private


def test_no_import_circle_and_no_private_import_across_parts():
    cycles, private = import_problems()
    assert cycles == [], f"import circles: {cycles}"
    assert private == [], "private names used outside their part (make them public or move them):\n" + "\n".join(
        private
    )


def test_the_checker_finds_a_circle_and_a_private_import(tmp_path):
    """The rule above can fail: a package with both defects is caught."""
    pkg = tmp_path / "kfgrpo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n")
    (pkg / "b.py").write_text("from .a import f\n\ndef g():\n    from .sub.c import _hidden\n")
    (pkg / "sub" / "c.py").write_text("_hidden = 1\n")
    (pkg / "sub" / "d.py").write_text("from .c import _hidden\n")  # siblings may share
    cycles, private = import_problems(pkg)
    assert cycles == [["kfgrpo.a", "kfgrpo.b"]]
    assert private == ["kfgrpo.b imports kfgrpo.sub.c._hidden"]


def test_functions_are_short():
    long = []
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_learned_selection_lives_under_tad():
    assert (ROOT / "tad" / "learned" / "selector.py").exists() and (ROOT / "tad" / "learned" / "training.py").exists()
    assert not (ROOT / "tad_learn.py").exists() and not (ROOT / "claims.py").exists()
    assert (ROOT / "cache" / "claims.py").exists()
