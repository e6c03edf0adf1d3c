"""Where things are: the repository root and its folders (one place, imported by every room that needs it)."""

from __future__ import annotations

from pathlib import Path

PKG_DIR = Path(__file__).resolve().parents[1]  # src/subgroup_values (this file is core/paths.py)
_HOME = PKG_DIR.parents[1]

#: The checkout whose ``src/`` this code is (a source tree, or an editable install of it); None for an installed
#: copy (``pip install .``: a wheel in site-packages), which belongs to no checkout.
SOURCE_CHECKOUT: Path | None = _HOME if PKG_DIR.parent.name == "src" and (_HOME / "pyproject.toml").is_file() else None
INSTALLED = SOURCE_CHECKOUT is None
#: An installed copy's data: the committed aggregates of data/processed/ (each shipped study's pairs table,
#: subgroups, questions and manifest; no respondent rows), carried in the wheel (see pyproject.toml).
SHIPPED_PROCESSED = PKG_DIR / "_aggregates"
#: Where the project's folders are: the checkout; for an installed copy, the package folder, which holds no
#: notebooks, configs or results (what needs those says so: :func:`require_checkout`).
REPO_ROOT = SOURCE_CHECKOUT if SOURCE_CHECKOUT is not None else PKG_DIR
DATA = REPO_ROOT / "data"
#: The folder that stands for ``data/processed/`` (Singapore's dataset; other studies' in folders under it): the
#: checkout's, or the aggregates an installed copy ships.
PROCESSED = SHIPPED_PROCESSED if INSTALLED else DATA / "processed"


def results_dir(profile: str, *parts: str) -> Path:
    """Where a profile's results go, ``results/<profile>/<parts...>``, relative to the repository root (the
    notebooks and make run there; a relative path keeps local folders out of what the notebooks print)."""
    return Path("results", str(profile), *map(str, parts))


def run_dir(profile: str, run: str) -> Path:
    """The folder of one run of a profile (``results/<profile>/<run>/``: predictions.parquet, metrics.json)."""
    if not run or "/" in str(run):
        raise ValueError(f"A run is named by one folder name, got {run!r}.")
    return results_dir(profile, run)


def data_folder(data_dir: str | Path) -> Path:
    """A study's dataset folder (its ``data_dir``: ``data/processed`` or ``data/processed/<study>``) as a path: in
    the checkout, or among the aggregates an installed copy ships (where a study it does not ship has none)."""
    data_dir = Path(data_dir)
    if not INSTALLED or data_dir.is_absolute():
        return REPO_ROOT / data_dir
    try:
        return PROCESSED / data_dir.relative_to("data/processed")
    except ValueError:
        return REPO_ROOT / data_dir


def require_checkout(what: str) -> None:
    """Stop with a clear message when ``what`` (a command that needs notebooks, configs or results folders) runs
    from an installed copy, which has none of them."""
    if INSTALLED:
        raise SystemExit(
            f"{what} needs a checkout of the project (its notebooks, configs/ and results/), but this "
            f"subgroup_values is an installed copy ({PKG_DIR}), which holds only the package and the committed "
            "aggregates. Clone the repository and run it there (`make setup` builds its .venv, with the package "
            "installed editable); an installed copy runs the library, `subgroup-values evaluate` and "
            "`subgroup-values build-dataset --out DIR`.")


def _checkout_of(path: Path) -> Path | None:
    """The checkout of this project that holds ``path`` (a folder with pyproject.toml and src/subgroup_values/)."""
    for folder in [path, *path.parents]:
        if (folder / "pyproject.toml").is_file() and (folder / "src" / "subgroup_values").is_dir():
            return folder.resolve()
    return None


def check_own_checkout(cwd: Path | None = None, prefix: str | None = None, installed: bool | None = None) -> None:
    """Refuse to run when the imported package is the code of a checkout other than the one one works in (the
    working directory's, or the one whose virtual environment runs): a venv whose editable install points at
    another checkout would run that checkout's code and write its results there. An installed copy (``installed``:
    default, whether this one is) is allowed anywhere."""
    import os
    import sys

    if os.environ.get("SUBGROUP_VALUES_ANY_CHECKOUT") == "1":
        return
    if INSTALLED if installed is None else installed:
        # an installed copy (pip install .) belongs to no checkout: it reads the aggregates it ships and writes
        # only where it is told (--out), so it may run anywhere, in a checkout's folder too
        return
    here = _checkout_of(Path.cwd() if cwd is None else Path(cwd))
    venv = _checkout_of(Path(sys.prefix if prefix is None else prefix))
    for checkout, how in ((here, "the working directory"), (venv, "the virtual environment")):
        if checkout is not None and checkout != REPO_ROOT:
            raise SystemExit(
                f"The subgroup_values package imported here is {PKG_DIR} (code of {REPO_ROOT}), but "
                f"{how} belongs to the checkout {checkout}: its own code would not run, and results would go to "
                f"the other checkout. Reinstall this checkout's package: `{checkout}/.venv/bin/python -m pip "
                f"install --no-deps -e {checkout}` (or `rm -rf {checkout}/.venv && make setup`); "
                f"SUBGROUP_VALUES_ANY_CHECKOUT=1 runs anyway.")


def project_machine(root: Path | None = None) -> bool:
    """True on the project's own machines: they have no network, and keep the licensed survey files beside the
    checkouts (``../shared/wvs7_sgp/``, where the Makefile looks for the survey file too; for an installed copy,
    beside a folder that holds its environment)."""
    root = REPO_ROOT if root is None else Path(root)
    return any((folder / "shared" / "wvs7_sgp").is_dir() for folder in root.resolve().parents)


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
