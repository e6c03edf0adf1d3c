"""The package's folders are its stages, and the import graph says so: no module imports one of a later stage, no
circle among the imports Python runs at import time, and README's table of rooms is the modules' own words."""

from __future__ import annotations

import ast

from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.pipeline import deps
from subgroup_values.pipeline.deps import PKG_DIR, STAGE_ORDER


def _modules() -> dict[str, tuple[str, ast.Module]]:
    out = {}
    for f in sorted(PKG_DIR.rglob("*.py")):
        rel = f.relative_to(PKG_DIR)
        if rel.parts[0].startswith("_") or len(rel.parts) == 1:
            continue
        name = "subgroup_values." + ".".join(rel.with_suffix("").parts)
        out[name] = (rel.parts[0], ast.parse(f.read_text()))
    return out


def _stage(module: str) -> str:
    return module.split(".")[1]


def test_every_module_is_in_a_stage_and_the_top_package_holds_none():
    top = sorted(p.name for p in PKG_DIR.glob("*.py"))
    assert top == ["__init__.py"]
    assert {p.name for p in PKG_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))} == set(STAGE_ORDER)
    for stage in STAGE_ORDER:  # a stage's __init__ says what the stage is and imports nothing (make's prerequisites)
        init = ast.parse((PKG_DIR / stage / "__init__.py").read_text())
        if stage != "backends":  # backends/__init__ is the backends' factory (make_backend)
            assert ast.get_docstring(init) and all(isinstance(n, ast.Expr) for n in init.body), stage


def test_no_module_imports_a_later_stage():
    rank = {s: i for i, s in enumerate(STAGE_ORDER)}
    upward = []
    for name, (stage, tree) in _modules().items():
        for imported in deps.imported_modules(tree, name):
            if imported.count(".") >= 1 and _stage(imported) in rank and rank[_stage(imported)] > rank[stage]:
                upward.append(f"{name} -> {imported}")
    assert upward == []


def test_no_circle_among_module_level_imports():
    graph = {}
    for name, (_, tree) in _modules().items():
        top_level = ast.Module(body=[n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)],
                               type_ignores=[])
        graph[name] = {m for m in deps.imported_modules(top_level, name) if m != name and m.count(".") >= 2}
    state: dict[str, int] = {}

    def visit(n, path):
        state[n] = 1
        for m in graph.get(n, ()):
            if state.get(m) == 1:
                raise AssertionError(f"import circle: {' -> '.join(path + [m])}")
            if not state.get(m):
                visit(m, path + [m])
        state[n] = 2

    for n in graph:
        if not state.get(n):
            visit(n, [n])


def test_readme_table_of_rooms_is_the_modules_docstrings():
    text = (REPO_ROOT / "docs" / "details.md").read_text()
    assert deps.PACKAGE_BEGIN in text and deps.PACKAGE_END in text
    block = text.split(deps.PACKAGE_BEGIN, 1)[1].split(deps.PACKAGE_END, 1)[0]
    assert block.strip() == deps.package_table().strip(), (
        "The details page's table of rooms differs from the modules' docstrings: run `python -m "
        "subgroup_values.pipeline.deps readme docs/details.md`")
    for name in _modules():  # every module is in it
        if name.endswith(".__init__"):
            continue
        assert f"`{name.split('.')[-1]}`" in block, name
