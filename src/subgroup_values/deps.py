"""Which package files each notebook depends on, read from the imports (so the Makefile's lists cannot drift).

    python src/subgroup_values/deps.py > build/deps.mk      (the Makefile does this; standard library only)

A notebook depends on every module it imports (``import subgroup_values.x``, ``from subgroup_values import x``,
``from subgroup_values.x import y``), on every module those import (relative imports, also inside functions),
and on the ``__init__.py`` of every package on the way. The output defines ``DEPS_<notebook stem>`` for make.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

PKG_DIR = Path(__file__).resolve().parent
PKG = PKG_DIR.name


def _module_file(name: str) -> Path | None:
    """``subgroup_values.backends.hf`` -> its file (a module or a package's __init__.py), or None."""
    parts = name.split(".")
    if parts[0] != PKG:
        return None
    base = PKG_DIR.joinpath(*parts[1:])
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _package_inits(name: str) -> list[Path]:
    parts = name.split(".")
    return [p for k in range(1, len(parts) + 1) if (p := PKG_DIR.joinpath(*parts[1:k], "__init__.py")).is_file()]


def imported_modules(tree: ast.AST, current: str | None = None) -> set[str]:
    """Dotted names of the package's modules imported anywhere in ``tree`` (``current``: the importing module,
    for relative imports)."""
    found: set[str] = set()
    package = current.rsplit(".", 1)[0] if current and not current.endswith("__init__") else current
    if current and current.endswith(".__init__"):
        package = current[: -len(".__init__")]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PKG)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if package is None:
                    continue
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != PKG:
                continue
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names if _module_file(f"{mod}.{a.name}"))
    return {m for m in found if _module_file(m)}


def closure(modules: set[str]) -> set[Path]:
    """Every file reached from ``modules``: the modules, what they import, and the packages' __init__ files."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        files.update([path, *_package_inits(name)])
        current = name + ".__init__" if path.name == "__init__.py" else name
        todo.extend(imported_modules(ast.parse(path.read_text()), current) - seen)
    return files


def _notebook_tree(path: Path) -> ast.AST:
    cells = json.loads(path.read_text())["cells"]
    code = []
    for c in cells:
        if c["cell_type"] == "code":
            src = "".join(c["source"])
            code.append("\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!"))))
    return ast.parse("\n".join(code))


def notebook_files(path: Path) -> list[Path]:
    """The package files a notebook depends on, sorted."""
    return sorted(closure(imported_modules(_notebook_tree(path))))


def makefile_text(root: Path) -> str:
    out = ["# Written by src/subgroup_values/deps.py from the notebooks' imports; do not edit."]
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        files = " ".join(p.relative_to(root).as_posix() for p in notebook_files(nb))
        out.append(f"DEPS_{nb.stem} := {files}")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(makefile_text(PKG_DIR.parents[1]))
