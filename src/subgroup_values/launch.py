"""Binder and Colab: the links and the notebooks' first cell, from the repository named once in CITATION.cff.

    python src/subgroup_values/launch.py badges        the README's Binder and Colab badges (Markdown)
    python src/subgroup_values/launch.py active-env    1 when the active python can run the study (make uses it)

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

ROOT = Path(__file__).resolve().parents[2]
#: The notebook a Binder or Colab link opens first (the evaluation of a model; it needs no survey file).
FIRST_NOTEBOOK = "notebooks/03_evaluate.ipynb"
#: The packages make needs from an environment it did not build (import names).
NEEDED = ("subgroup_values", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "pandas", "numpy",
          "scipy", "pyarrow", "yaml", "matplotlib", "seaborn", "papermill", "nbformat", "nbconvert", "ipykernel",
          "gguf", "safetensors")
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
    """The first code cell of every notebook. On Colab: clone, install the package over Colab's own torch (the
    package's compatible ranges, pyproject.toml, not requirements.txt's exact pins), build the embedded model (the
    command the Makefile's model rule runs); the backends use the GPU when there is one. Elsewhere it only moves to
    the repository root so that relative paths work from any folder."""
    return f'''# Setup. On Colab this clones the compendium, installs it over Colab's own torch (the package's compatible
# ranges, not requirements.txt's exact pins) and builds the embedded model (~1 min); the GPU is used when there is
# one. Set SUBGROUP_VALUES_REPO to clone another copy. Elsewhere it only moves to the repository root.
import os, subprocess, sys
if "google.colab" in sys.modules:
    home = "{COLAB_DIR}"
    if not os.path.isdir(home):
        repo = os.environ.get("SUBGROUP_VALUES_REPO", "{clone_url(root)}")
        subprocess.run(["git", "clone", "--depth", "1", repo, home], check=True)
    if not os.path.isfile(f"{{home}}/models/SmolLM2-135M-Instruct/model.safetensors"):
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", home], check=True)
        subprocess.run([sys.executable, "-m", "subgroup_values.local_models", "smollm2", "models/SmolLM2-135M-Instruct"],
                       cwd=home, check=True, env={{**os.environ, "PYTHONPATH": f"{{home}}/src"}})
    sys.path.insert(0, f"{{home}}/src")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from subgroup_values.paths import REPO_ROOT
os.chdir(REPO_ROOT)'''


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
        raise SystemExit("usage: python src/subgroup_values/launch.py badges | active-env")


if __name__ == "__main__":
    main()
