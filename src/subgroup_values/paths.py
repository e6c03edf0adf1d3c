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


def project_machine(root: Path | None = None) -> bool:
    """True on the project's own machines: they have no network, and keep the licensed survey files beside the
    checkout (``../shared/wvs7_sgp/``, where the Makefile looks for the survey file too)."""
    return ((REPO_ROOT if root is None else Path(root)).parent / "shared" / "wvs7_sgp").is_dir()


def settle_hub_mode(root: Path | None = None) -> str:
    """Decide, once per process, whether the Hugging Face hub is used, and say it in the environment that child
    processes (a notebook's kernel, a server) inherit: an ``HF_HUB_OFFLINE`` the user set is kept; unset, it
    becomes "1" (offline) on the project machines, which have no network, and "0" elsewhere, so that a hub id
    (``--model Qwen/Qwen2.5-7B-Instruct``) downloads. ``HF_DATASETS_OFFLINE`` follows unless set. Returns the
    value. Call it before transformers or huggingface_hub is imported (they read it once, at import)."""
    import os

    value = os.environ.get("HF_HUB_OFFLINE", "").strip()
    if value == "":
        value = "1" if project_machine(root) else "0"
    os.environ["HF_HUB_OFFLINE"] = value
    os.environ.setdefault("HF_DATASETS_OFFLINE", value)
    return value
