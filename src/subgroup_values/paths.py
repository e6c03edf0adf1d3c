"""Where things are: the repository root and its folders (one place, imported by every room that needs it)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT / "data"
PROCESSED = DATA / "processed"


def _checkout_of(path: Path) -> Path | None:
    """The checkout of this project that holds ``path`` (a folder with pyproject.toml and src/subgroup_values/)."""
    for folder in [path, *path.parents]:
        if (folder / "pyproject.toml").is_file() and (folder / "src" / "subgroup_values").is_dir():
            return folder.resolve()
    return None


def check_own_checkout(cwd: Path | None = None, prefix: str | None = None) -> None:
    """Refuse to run when the imported package is not the code of the checkout one works in (the working
    directory's, or the one whose virtual environment runs): a venv whose editable install points at another
    checkout would run that checkout's code and write its results there."""
    import os
    import sys

    if os.environ.get("SUBGROUP_VALUES_ANY_CHECKOUT") == "1":
        return
    here = _checkout_of(Path.cwd() if cwd is None else Path(cwd))
    venv = _checkout_of(Path(sys.prefix if prefix is None else prefix))
    for checkout, how in ((here, "the working directory"), (venv, "the virtual environment")):
        if checkout is not None and checkout != REPO_ROOT:
            raise SystemExit(
                f"The subgroup_values package imported here is {Path(__file__).parent} (code of {REPO_ROOT}), but "
                f"{how} belongs to the checkout {checkout}: its own code would not run, and results would go to "
                f"the other checkout. Reinstall this checkout's package: `{checkout}/.venv/bin/python -m pip "
                f"install --no-deps -e {checkout}` (or `rm -rf {checkout}/.venv && make setup`); "
                f"SUBGROUP_VALUES_ANY_CHECKOUT=1 runs anyway.")
