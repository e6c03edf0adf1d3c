"""Which package files each notebook depends on, read from the imports (so the Makefile's lists cannot drift).

    python src/subgroup_values/pipeline/deps.py > build/deps.mk      (the Makefile does this; standard library only)
    python -m subgroup_values.pipeline.deps readme docs/details.md  (the details page's table of rooms, from the docstrings)

A notebook depends on every module it imports (``import subgroup_values.x``, ``from subgroup_values import x``,
``from subgroup_values.x import y``), on every module those import (relative imports, also inside functions),
and on the ``__init__.py`` of every package on the way. The output defines ``DEPS_<notebook stem>`` for make.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

PKG_DIR = Path(__file__).resolve().parents[1]  # src/subgroup_values (this file is pipeline/deps.py)
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
    out = ["# Written by src/subgroup_values/pipeline/deps.py from the notebooks' imports; do not edit."]
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        files = " ".join(p.relative_to(root).as_posix() for p in notebook_files(nb))
        out.append(f"DEPS_{nb.stem} := {files}")
    return "\n".join(out) + "\n"


#: The package's stages, in order: a module imports only modules of its own stage or an earlier one (a test checks
#: it); each is a folder of src/subgroup_values/ whose __init__.py says what it holds.
STAGE_ORDER = ("core", "stats", "survey", "backends", "evaluation", "training", "analysis", "reporting", "pipeline")
PACKAGE_BEGIN = "<!-- package:begin (written by `python -m subgroup_values.pipeline.deps readme docs/details.md`) -->"
PACKAGE_END = "<!-- package:end -->"


def _first_sentence(tree: ast.AST) -> str:
    import re

    doc = (ast.get_docstring(tree) or "").split("\n\n")[0].replace("\n", " ").strip()
    doc = re.split(r"(?<=[.?!])\s+(?=[A-Z])", doc)[0]  # its first sentence
    return doc.replace("|", "\\|")


def package_table() -> str:
    """the details page's table of rooms: per stage (its folder, what its __init__ says) every module with the first
    paragraph of its docstring."""
    rows = ["| stage | module | its one job |", "|---|---|---|"]
    for stage in STAGE_ORDER:
        folder = PKG_DIR / stage
        rows.append(f"| **`{stage}/`** | | {_first_sentence(ast.parse((folder / '__init__.py').read_text()))} |")
        for f in sorted(folder.glob("*.py")):
            if f.name != "__init__.py":
                rows.append(f"| | `{f.stem}` | {_first_sentence(ast.parse(f.read_text()))} |")
    return "\n".join(rows) + "\n"


def write_readme_table(readme: Path) -> bool:
    """Rewrite the details page's table of rooms (between the package markers) from the docstrings; True when it changed."""
    text = readme.read_text()
    if PACKAGE_BEGIN not in text or PACKAGE_END not in text:
        raise SystemExit(f"{readme} has no {PACKAGE_BEGIN} ... {PACKAGE_END} block to write the table into.")
    head, rest = text.split(PACKAGE_BEGIN, 1)
    new = head + PACKAGE_BEGIN + "\n" + package_table() + PACKAGE_END + rest.split(PACKAGE_END, 1)[1]
    if new != text:
        readme.write_text(new)
    return new != text


if __name__ == "__main__":
    if sys.argv[1:2] == ["readme"]:
        print("README table of rooms:", "rewritten" if write_readme_table(Path(sys.argv[2])) else "unchanged")
    else:
        sys.stdout.write(makefile_text(PKG_DIR.parents[1]))
