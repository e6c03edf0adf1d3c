"""Run records: configuration, git revision, package versions, data hashes, timings."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from .paths import REPO_ROOT

PACKAGES = ("subgroup-values", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "pandas", "numpy",
            "seaborn", "matplotlib", "papermill")


#: What makes a result: code, notebooks, configs and inputs. The outputs a run writes (results/, figures/,
#: data/processed/, README's results block) are not among them, so a run's own steps do not make it "dirty".
SOURCE_PATHS = ("src", "notebooks", "configs", "scripts", "Makefile", "requirements.txt", "pyproject.toml",
                "data/questions.csv")


def git_revision(root: Path = REPO_ROOT) -> str:
    """The checkout's commit, with '-dirty' when tracked sources (:data:`SOURCE_PATHS`) differ from it;
    'unknown' outside git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_record(config: dict, data: dict | None = None, **extra) -> dict:
    """Everything needed to say how a result was made."""
    return {
        "config": config,
        "data": data or {},
        "git_revision": git_revision(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def write_json(obj: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    return path
