"""The Makefile's prerequisites come from the imports: touching a module reruns exactly the steps that use it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.pipeline import deps

PKG = REPO_ROOT / "src" / "subgroup_values"
MODULES = sorted(p.relative_to(REPO_ROOT).as_posix() for p in [*PKG.glob("*.py"), *PKG.glob("backends/*.py")])
# The study's chain (which step reads which step's output), as the Makefile writes it.
STEPS = {"01_build_dataset": [], "02_value_landscape": ["01_build_dataset"],
         "03_evaluate:base_ood": ["01_build_dataset"], "03_evaluate:base_train": ["01_build_dataset"],
         "03_evaluate:base_ood_generate": ["01_build_dataset"], "04_finetune": ["01_build_dataset"],
         "03_evaluate:sft_ood": ["01_build_dataset", "04_finetune"],
         "03_evaluate:sft_train": ["01_build_dataset", "04_finetune"],
         "03_evaluate:sft_ood_generate": ["01_build_dataset", "04_finetune"],
         "03_evaluate:base_ood_refusals": ["01_build_dataset"],
         "03_evaluate:sft_ood_refusals": ["01_build_dataset", "04_finetune"],
         "05_fairness": [f"03_evaluate:{r}" for r in ("base_ood", "base_train", "base_ood_generate", "sft_ood",
                                                      "sft_train", "sft_ood_generate", "base_ood_refusals",
                                                      "sft_ood_refusals")],
         "04_finetune:sft_distribution": ["01_build_dataset"],
         "03_evaluate:sft_distribution_ood": ["01_build_dataset", "04_finetune:sft_distribution"],
         "03_evaluate:base_ood_marginals": ["01_build_dataset"],
         "03_evaluate:sft_ood_marginals": ["01_build_dataset", "04_finetune"],
         "03_evaluate:sft_distribution_ood_marginals": ["01_build_dataset", "04_finetune:sft_distribution"],
         "06_open_ended": ["04_finetune"],
         "08_headroom": ["01_build_dataset", *(f"03_evaluate:{r}" for r in (
             "base_ood", "sft_ood", "sft_distribution_ood", "base_ood_marginals", "sft_ood_marginals",
             "sft_distribution_ood_marginals"))],
         "07_paper_comparison": ["02_value_landscape", "05_fairness", "06_open_ended", "08_headroom"]}


def make(*args, build):
    env = {**{k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")},
           "PYTHONPATH": str(REPO_ROOT / "src")}
    r = subprocess.run(["make", "--no-print-directory", *args, "PROFILE=paper", f"BUILD={build}", "WVS_CHECK=",
                        f"PAIRS={build}/pairs.csv"], cwd=REPO_ROOT,
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def steps_run(output: str) -> set[str]:
    out = set()
    for line in output.splitlines():
        m = re.search(r"subgroup_values\.pipeline\.runner .* notebooks/(\w+)\.ipynb(?: --run (\w+))?", line)
        if m:
            out.add(m.group(1) + (f":{m.group(2)}" if m.group(2) else ""))
    return out


def expected(module: str) -> set[str]:
    direct = {s for s in STEPS if module in {p.relative_to(REPO_ROOT).as_posix()
                                             for p in deps.notebook_files(REPO_ROOT / "notebooks" /
                                                                          f"{s.split(':')[0]}.ipynb")}}
    changed = set(direct)
    while True:
        more = {s for s, before in STEPS.items() if set(before) & changed} - changed
        if not more:
            return changed
        changed |= more


def test_touching_a_module_reruns_exactly_the_steps_that_import_it(tmp_path, wvs_file):
    build = tmp_path / "build"
    (build / "notebooks" / "paper").mkdir(parents=True)
    make("-t", "all", f"WVS_FILE={wvs_file}", build=build)  # every step marked done
    assert steps_run(make("-n", "all", f"WVS_FILE={wvs_file}", build=build)) == set()
    wrong = {}
    for module in MODULES:
        got = steps_run(make("-n", "-W", module, "all", f"WVS_FILE={wvs_file}", build=build))
        if got != expected(module):
            wrong[module] = {"reruns": sorted(got), "expected": sorted(expected(module))}
    assert not wrong, wrong
    assert expected("src/subgroup_values/analysis/fairness.py") == {"05_fairness", "07_paper_comparison"}


@pytest.mark.parametrize("stem", ["01_build_dataset", "03_evaluate", "05_fairness", "06_open_ended"])
def test_derived_dependencies_cover_what_a_notebook_really_imports(stem):
    """An independent check of deps.py: run the notebook's import lines and list the package modules loaded."""
    import json

    cells = json.loads((REPO_ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"][1:]
    lines = [ln for c in cells if c["cell_type"] == "code" for ln in "".join(c["source"]).splitlines()
             if re.match(r"(from|import) subgroup_values", ln)]
    code = "\n".join(lines) + "\nimport sys\nprint('\\n'.join(m for m in sys.modules if m.startswith('subgroup_values')))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    loaded = {deps._module_file(m).relative_to(REPO_ROOT).as_posix() for m in r.stdout.split() if deps._module_file(m)}
    derived = {p.relative_to(REPO_ROOT).as_posix() for p in deps.notebook_files(REPO_ROOT / "notebooks" / f"{stem}.ipynb")}
    assert loaded and loaded <= derived, loaded - derived


def test_make_all_leaves_exactly_the_separate_targets_steps_to_their_own_command(tmp_path):
    """The default profile's `make distribution` steps (its runs with target: distribution) are the ones timed apart from
    `make all`, and `make all` does not run them (a dry run from scratch lists every step it would run)."""
    from subgroup_values.core import plan

    env = {**{k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")},
           "PYTHONPATH": str(REPO_ROOT / "src")}

    def dry(target):
        r = subprocess.run(["make", "--no-print-directory", "-n", "-B", target, "PROFILE=default",
                            f"BUILD={tmp_path}/build", "WVS_CHECK="], cwd=REPO_ROOT, capture_output=True,
                           text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        return {s.replace(":", "__") for s in steps_run(r.stdout)}

    separate = set(plan.separate_targets("default")["distribution"])
    assert separate <= dry("distribution")
    every = dry("all")
    assert not separate & every and "08_headroom" in every and "03_evaluate__sft_ood" in every
