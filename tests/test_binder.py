"""Binder and Colab starts, as far as these machines can check them (no conda, no Binder, no Colab here).

repo2docker's rules on the files (tested here): with no binder/ or .binder/ folder it reads the repository root;
environment.yml selects its conda build pack (requirements.txt is then not read by repo2docker itself, so
environment.yml installs it); a pip section with a local requirement (-r file, -e .) makes it copy the whole
repository before the environment is built; postBuild must be an executable file, run once after the build.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.pipeline import launch, runner

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def makefile_model_command() -> list[str]:
    """The command of the Makefile's rule for the embedded model (without the $(PY) in front)."""
    text = (REPO_ROOT / "Makefile").read_text()
    m = re.search(r"^models/SmolLM2-135M-Instruct/conversion\.json:.*\n\t\$\(PY\) (.+)$", text, re.M)
    assert m, "the Makefile has no rule for models/SmolLM2-135M-Instruct/conversion.json"
    return shlex.split(m.group(1))


def test_repo2docker_reads_the_root_and_postbuild_is_an_executable_script():
    assert not (REPO_ROOT / "binder").exists() and not (REPO_ROOT / ".binder").exists(), \
        "a binder/ folder makes repo2docker ignore environment.yml and postBuild at the root"
    post = REPO_ROOT / "postBuild"
    assert post.is_file() and os.access(post, os.X_OK), "postBuild must be an executable file"
    staged = subprocess.run(["git", "ls-files", "-s", "postBuild"], cwd=REPO_ROOT, capture_output=True, text=True)
    if staged.stdout:  # committed: the mode git gives a clone must be executable too
        assert staged.stdout.startswith("100755"), staged.stdout
    text = post.read_text()
    assert text.startswith("#!/bin/bash\n") and "set -euo pipefail" in text
    subprocess.run(["bash", "-n", str(post)], check=True)  # parses
    lines = [shlex.split(ln) for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    # the embedded model, built by the very command of the Makefile's rule (with the environment's python)
    assert ["python", *makefile_model_command()] in lines, lines


def test_environment_yml_parses_and_installs_the_tested_pins_and_the_package():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    assert env["name"] == "subgroup-values" and "conda-forge" in env["channels"]
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps and "make" in deps  # the tested Python; make runs the steps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-r requirements.txt" in pip and "-e ." in pip  # local: repo2docker copies the repository first
    assert (REPO_ROOT / "requirements.txt").is_file()
    assert not (REPO_ROOT / "runtime.txt").exists()  # would contradict python=3.11
    # the packages the study needs are in what it installs
    pins = {ln.split("==")[0].lower() for ln in (REPO_ROOT / "requirements.txt").read_text().splitlines()
            if "==" in ln and not ln.startswith("#")}
    for name in ("torch", "transformers", "peft", "trl", "pandas", "papermill", "nbconvert", "ipykernel", "gguf"):
        assert name in pins, name


def test_the_binder_profile_is_small_and_has_no_fine_tune(tmp_path):
    cfg = runner.load_profile("binder")
    runs = cfg["runs"]
    assert set(runs) == {"base_ood", "base_train"} and all(0 < r["limit"] <= 300 for r in runs.values())
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "WVS_FILE")}
    r = subprocess.run(["make", "--no-print-directory", "-n", "all", "PROFILE=binder", f"BUILD={tmp_path}",
                        "WVS_SEARCH=", "WVS_CHECK=", "REUSE=0"], cwd=REPO_ROOT, capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    steps = re.findall(r"subgroup_values\.pipeline\.runner .* notebooks/(\w+)\.ipynb(?: --run (\w+))?", r.stdout)
    assert sorted(steps) == [("02_value_landscape", ""), ("03_evaluate", "base_ood"), ("03_evaluate", "base_train")]


def test_every_notebook_starts_with_the_colab_cell_made_from_citation():
    cell = launch.colab_cell()
    assert launch.clone_url() == launch.repository() + ".git"
    assert f'"{launch.clone_url()}"' in cell
    assert "requirements.txt" not in cell.split("\n", 3)[3]  # installs the package's ranges, not the exact pins
    for nb in NOTEBOOKS:
        first = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert "".join(first["source"]) == cell, f"{nb.name}: its first cell is not launch.colab_cell()"
    # setup() builds the model with the Makefile rule's command, and the cell makes that one call
    assert cell.rstrip().endswith("from subgroup_values.pipeline.launch import setup; setup()")
    assert list(launch.MODEL_COMMAND) == makefile_model_command()


def test_the_package_ranges_let_colab_keep_its_own_torch():
    text = (REPO_ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S).group(1)
    specs = re.findall(r'"([^"]+)"', deps)
    assert specs and not [s for s in specs if "==" in s], specs
    assert any(s.startswith("torch>=") for s in specs)


def test_readme_has_the_badges_made_from_citation():
    readme = (REPO_ROOT / "README.md").read_text()
    assert launch.badges() in readme
    assert launch.repository().startswith("https://github.com/")


def test_make_uses_the_active_environment_when_it_has_the_packages(tmp_path):
    assert launch.active_env_ok()  # this python: an editable install of this checkout with the study's packages
    assert not launch.active_env_ok(tmp_path)  # another checkout's package is not this one's
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "--no-print-directory", "-n", "setup", f"PYTHON={sys.executable}",
                        "USE_ACTIVE_ENV=1", f"BUILD={tmp_path}", "WVS_CHECK="], cwd=REPO_ROOT,
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "-m venv" not in r.stdout and "active environment" in r.stdout, r.stdout
    auto = subprocess.run([sys.executable, str(REPO_ROOT / "src/subgroup_values/pipeline/launch.py"), "active-env"],
                          capture_output=True, text=True, check=True)
    assert auto.stdout.strip() == "1"


@pytest.mark.slow
def test_the_colab_install_keeps_the_preinstalled_torch_and_pandas(tmp_path):
    """A fresh environment that already has torch, pandas and numpy (as Colab has; here this checkout's venv's,
    reached through a .pth file): the Colab cell's install (pip install -e, dry run against the package index
    these machines have) installs the package and leaves those alone."""
    import sysconfig

    target = tmp_path / "colab"
    venv.create(target, with_pip=True)
    py = target / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    cmd = [str(py), *launch.colab_install_command(str(REPO_ROOT))[1:], "--dry-run", "--report", "-"]
    cmd.remove("-q")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    report, _ = json.JSONDecoder().raw_decode(r.stdout[r.stdout.index("{"):])  # then pip's "Would install"
    installs = {item["metadata"]["name"].lower() for item in report["install"]}
    assert "subgroup-values" in installs
    assert not installs & {"torch", "pandas", "numpy", "transformers"}, installs
