"""Binder and Colab: the links and the notebooks' first cell, from the repository named once in CITATION.cff.

    python src/subgroup_values/pipeline/launch.py badges        the README's Binder and Colab badges (Markdown)
    python src/subgroup_values/pipeline/launch.py active-env    1 when the active python can run the study (make uses it)

The repository's URL is CITATION.cff's ``repository-code``; the badges and the clone URL in every notebook's first
cell are made from it here (tests/test_binder.py checks that README and the notebooks say the same). Standard
library only: the Makefile runs it before any environment is set up.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
#: The notebook a Binder or Colab link opens first (the evaluation of a model; it needs no survey file).
FIRST_NOTEBOOK = "notebooks/03_evaluate.ipynb"
#: The packages make needs from an environment it did not build (import names).
NEEDED = ("subgroup_values", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "pandas", "numpy",
          "scipy", "pyarrow", "yaml", "matplotlib", "seaborn", "papermill", "nbformat", "nbconvert", "ipykernel",
          "gguf", "safetensors")
#: The command (after the python) that builds the embedded model: the Makefile's model rule's (a test keeps them equal).
MODEL_COMMAND = ("-m", "subgroup_values.pipeline.local_models", "smollm2", "models/SmolLM2-135M-Instruct")
#: Where a notebook opened on Colab clones the compendium to.
COLAB_DIR = "/content/subgroup-values"


def repository(root: Path = ROOT) -> str:
    """CITATION.cff's ``repository-code`` (https://github.com/<owner>/<name>)."""
    path = root / "CITATION.cff"
    m = re.search(r"^repository-code:\s*[\"']?(https://github\.com/[\w.-]+/[\w.-]+?)/?[\"']?\s*$",
                  path.read_text(), re.M)
    if not m:
        raise SystemExit(f"{path} has no repository-code: https://github.com/<owner>/<name> line: the Binder and "
                         "Colab links are made from it.")
    return m.group(1)


def github_path(root: Path = ROOT) -> str:
    return repository(root).removeprefix("https://github.com/")


def binder_url(root: Path = ROOT, branch: str = "HEAD", path: str = FIRST_NOTEBOOK) -> str:
    return f"https://mybinder.org/v2/gh/{github_path(root)}/{branch}?labpath={path.replace('/', '%2F')}"


def colab_url(root: Path = ROOT, branch: str = "main", path: str = FIRST_NOTEBOOK) -> str:
    return f"https://colab.research.google.com/github/{github_path(root)}/blob/{branch}/{path}"


def badges(root: Path = ROOT) -> str:
    """The README's two badges (one line of Markdown)."""
    return (f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(root)}) "
            f"[![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(root)})")


def clone_url(root: Path = ROOT) -> str:
    return repository(root) + ".git"


def colab_cell(root: Path = ROOT) -> str:
    """The first code cell of every notebook: on Colab it clones the compendium and installs it (once; the
    package's compatible ranges, pyproject.toml, over Colab's own torch, not requirements.txt's exact pins), then
    every notebook makes the one call :func:`setup`."""
    return f'''# Setup, one call. On Colab the compendium is cloned and installed over Colab's own torch first (once; set
# SUBGROUP_VALUES_REPO to clone another copy); setup() builds the embedded model there (~1 min) and, everywhere,
# moves to the repository root. The GPU is used when there is one.
import os, subprocess, sys
if "google.colab" in sys.modules:
    if not os.path.isdir("{COLAB_DIR}"):
        subprocess.run(["git", "clone", "--depth", "1", os.environ.get("SUBGROUP_VALUES_REPO", "{clone_url(root)}"),
                        "{COLAB_DIR}"], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "{COLAB_DIR}"], check=True)
    sys.path.insert(0, "{COLAB_DIR}/src")
from subgroup_values.pipeline.launch import setup; setup()'''


def setup() -> Path:
    """What every notebook does first: on Colab, build the embedded model when it is not there (the command the
    Makefile's model rule runs); the hub offline on the project machines only (they have no network; elsewhere,
    Binder and Colab included, online, so that a hub id downloads; an ``HF_HUB_OFFLINE`` the shell sets wins);
    the working directory the repository root, so that relative paths work from any folder. Returns the root."""
    import subprocess

    if "google.colab" in sys.modules and not (ROOT / "models/SmolLM2-135M-Instruct/model.safetensors").is_file():
        subprocess.run([sys.executable, *MODEL_COMMAND], cwd=ROOT, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    from subgroup_values.core.paths import REPO_ROOT, settle_hub_mode

    settle_hub_mode()
    os.chdir(REPO_ROOT)
    return REPO_ROOT


def colab_install_command(home: str = COLAB_DIR) -> list[str]:
    """The install the Colab cell runs (tests run it in a fresh environment)."""
    return [sys.executable, "-m", "pip", "install", "-q", "-e", home]


def active_env_ok(root: Path = ROOT) -> bool:
    """True when this python imports this checkout's package (an editable install of it) and every package the
    study needs, so that make can use it instead of building .venv (Binder, Colab, a conda environment)."""
    for name in NEEDED:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return False
        if spec is None:
            return False
    origin = importlib.util.find_spec("subgroup_values").origin or ""
    return os.path.realpath(origin).startswith(os.path.realpath(root / "src" / "subgroup_values") + os.sep)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["badges"]:
        print(badges())
    elif args == ["active-env"]:
        sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
        print(1 if active_env_ok() else 0)
    else:
        raise SystemExit("usage: python src/subgroup_values/pipeline/launch.py badges | active-env")


if __name__ == "__main__":
    main()
