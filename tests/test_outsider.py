"""Routes a newcomer takes outside the reference run: the hub setting (offline only on the project machines, and
switchable), notebook parameters given on the command line, and an installed copy of the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from subgroup_values.core import paths
from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.pipeline.runner import _parse_value


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HUB")}
    env.pop("SUBGROUP_VALUES_STUDY", None)
    return env | extra


# ---- the hub: offline on the project machines, online elsewhere, and what the user says wins -------------------

def test_the_hub_is_offline_only_on_the_project_machines(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    elsewhere = tmp_path / "clone"
    elsewhere.mkdir()
    assert not paths.project_machine(elsewhere)
    assert paths.settle_hub_mode(elsewhere) == "0" and os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["HF_DATASETS_OFFLINE"] == "0"
    (tmp_path / "shared" / "wvs7_sgp").mkdir(parents=True)  # what a project machine has beside its checkouts
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert paths.project_machine(elsewhere) and paths.settle_hub_mode(elsewhere) == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the user's own setting is kept, on a project machine too
    assert paths.settle_hub_mode(elsewhere) == "0"


@pytest.mark.parametrize(("args", "env", "expected"), [
    ([], {}, "1" if paths.project_machine() else "0"),
    (["HUB=online"], {}, "0"),
    (["HUB=offline"], {"HF_HUB_OFFLINE": "0"}, "1"),  # the command line wins over the shell
    ([], {"HF_HUB_OFFLINE": "0"}, "0"),  # the shell's setting is kept (make's export no longer overrides it)
])
def test_make_passes_the_hub_setting_on(args, env, expected):
    r = subprocess.run(["make", "-s", "--no-print-directory", "--eval",
                        "hub-env: ; @echo $$HF_HUB_OFFLINE $$HF_DATASETS_OFFLINE", "hub-env", *args],
                       capture_output=True, text=True, cwd=REPO_ROOT, env=_clean_env(**env), timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [expected, expected]


def test_make_refuses_an_unknown_hub_setting():
    r = subprocess.run(["make", "-s", "--no-print-directory", "--eval", "hub-env: ; @true", "hub-env", "HUB=yes"],
                       capture_output=True, text=True, cwd=REPO_ROOT, env=_clean_env(), timeout=600)
    assert r.returncode != 0 and "expected HUB=online or HUB=offline" in r.stderr


# ---- notebook parameters from the command line ----------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [("", ""), ("  ", "  "), ("0", 0), ("[]", []), ("a b", "a b"),
                                              ("[Q1, Q2]", ["Q1", "Q2"]), ("null", None), ("a: b: c", "a: b: c")])
def test_a_flag_value_reads_as_yaml_but_empty_stays_a_string(text, value):
    assert _parse_value(text) == value and type(_parse_value(text)) is type(value)


def _probe_notebook(path):
    """A notebook whose parameters cell takes a string, an integer, a list and another string, and which writes
    what its kernel received (parameters and hub setting) to ``probe``."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nmarginals_runs = "x,y"\nlimit = 5\nqids = ["Q1"]\n'
                                       'note = "n"\nprobe = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import json, os\n"
        "json.dump({'marginals_runs': marginals_runs, 'limit': limit, 'qids': qids, 'note': note,\n"
        "           'hub': os.environ.get('HF_HUB_OFFLINE'), 'datasets': os.environ.get('HF_DATASETS_OFFLINE')},\n"
        "          open(probe, 'w'))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


@pytest.mark.parametrize("hub", ["unset", "0"])
def test_the_runner_hands_flags_and_the_hub_setting_to_the_kernel(tmp_path, hub):
    """A real papermill run (a kernel start: seconds): `-p marginals_runs ""` reaches the notebook as "", not None,
    and the kernel sees the hub setting the runner settled (the notebooks' own `setdefault` then keeps it)."""
    nb = _probe_notebook(tmp_path / "probe.ipynb")
    probe = tmp_path / "probe.json"
    env = _clean_env(**({} if hub == "unset" else {"HF_HUB_OFFLINE": hub}))
    r = subprocess.run([sys.executable, "-m", "subgroup_values.pipeline.runner", str(nb), "--profile", "smoke", "--out-dir",
                        str(tmp_path / "out"), "--no-html", "-p", "marginals_runs", "", "-p", "limit", "0", "-p",
                        "qids", "[]", "-p", "note", "a b", "-p", "probe", str(probe)],
                       capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(probe.read_text())
    expected_hub = ("1" if paths.project_machine() else "0") if hub == "unset" else hub
    assert got == {"marginals_runs": "", "limit": 0, "qids": [], "note": "a b", "hub": expected_hub,
                   "datasets": expected_hub}


# ---- an installed copy (pip install .) finds the committed aggregates it ships ----------------------------------

def _tracked(*prefixes: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", "--", *prefixes], capture_output=True, text=True, cwd=REPO_ROOT,
                         check=True).stdout
    return [f for f in out.split("\0") if f]


@pytest.fixture(scope="module")
def installed_copy(tmp_path_factory):
    """A real `pip install --no-deps --no-build-isolation` (a wheel built by setuptools, then installed) of this
    checkout's tracked files into a folder of its own, beside this venv's dependencies: the slow part of these
    tests (10-30 s), done once for all of them."""
    import shutil

    base = tmp_path_factory.mktemp("install")
    source, site = base / "source", base / "site"
    for rel in _tracked("pyproject.toml", "README.md", "src", "data/processed", *(f"results/default/{r}" for r in
                                                                               ("base_ood", "sft_ood",
                                                                                "sft_distribution_ood"))):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, source / rel)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(site), str(source)], capture_output=True, text=True,
                       timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    return site


def _run_installed(site, args, cwd, **kw):
    env = _clean_env(PYTHONPATH=str(site), HF_HUB_OFFLINE="1", SUBGROUP_VALUES_ANY_CHECKOUT="")
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env, timeout=1800, **kw)


def test_every_package_under_src_is_listed_for_the_wheel():
    import tomllib
    from setuptools import find_namespace_packages

    listed = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {p for p in find_namespace_packages(str(REPO_ROOT / "src")) if "__pycache__" not in p
             and not p.endswith(".egg-info")}
    assert found - listed == set(), "add the new package(s) to [tool.setuptools] packages in pyproject.toml"


@pytest.mark.slow
def test_the_installed_copy_ships_only_committed_aggregates(installed_copy):
    shipped = installed_copy / "subgroup_values" / "_aggregates"
    files = sorted(p.relative_to(shipped).as_posix() for p in shipped.rglob("*") if p.is_file())
    assert {"pairs.csv", "manifest.json", "tur/pairs.csv", "tur/manifest.json"} <= set(files)
    tracked = set(_tracked("data/processed"))
    for rel in files:  # each one a committed table of data/processed/, byte for byte: no respondent rows
        assert f"data/processed/{rel}" in tracked, rel
        assert (shipped / rel).read_bytes() == (REPO_ROOT / "data" / "processed" / rel).read_bytes(), rel


@pytest.mark.slow
def test_the_installed_copy_ships_the_audits_reference_runs(installed_copy):
    """A pip user's report card places their model beside the committed reference runs: the wheel ships them, and
    the audit reads them there when there is no checkout."""
    shipped = installed_copy / "subgroup_values" / "_references"
    for run in ("base_ood", "sft_ood", "sft_distribution_ood"):
        for name in ("predictions.parquet", "metrics.json"):
            assert (shipped / run / name).read_bytes() == (REPO_ROOT / "results/default" / run / name).read_bytes()
    r = _run_installed(installed_copy, [sys.executable, "-c", "from subgroup_values.pipeline.audit import "
                                        "default_references; print(default_references())"], cwd=installed_copy.parent)
    assert r.returncode == 0 and r.stdout.strip() == str(shipped), r.stdout + r.stderr


@pytest.mark.slow
def test_verify_data_checks_the_shipped_tables_outside_a_checkout(installed_copy, tmp_path):
    r = _run_installed(installed_copy, [sys.executable, "-m", "subgroup_values.pipeline.cli", "verify-data"],
                       cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert str(installed_copy / "subgroup_values" / "_aggregates") in r.stdout and "tables match" in r.stdout


@pytest.mark.slow
def test_readmes_library_snippet_runs_from_an_installed_copy(installed_copy, tiny_model, tmp_path):
    """README's library snippet, run by the installed copy from a folder outside any checkout (the tiny model in
    place of the embedded one, and a sample of 40 pairs so that it takes seconds), reads the shipped pairs table."""
    from subgroup_values.survey.dataset import load_pairs, pair_frame, sample_pairs
    from subgroup_values.survey.questions import load_questions

    readme = (REPO_ROOT / "README.md").read_text()
    snippet = readme.split("Or as a library:\n\n```python\n", 1)[1].split("```", 1)[0]
    edits = {'"models/SmolLM2-135M-Instruct"': repr(str(tiny_model)),
             'pairs = load_pairs(split="ood")\n': 'pairs = load_pairs(split="ood")\nprint("table", len(pairs))\n'
                                                  'from subgroup_values.survey.dataset import sample_pairs\n'
                                                  'pairs = sample_pairs(pairs, 40)\n',
             "print(evaluate.summarise(preds))": "s = evaluate.summarise(preds, n_boot=50)\n"
                                                 "print(s.to_string())\n"
                                                 "print('counts', dict(zip(s.subset, s.pairs)))\n"
                                                 "import subgroup_values.core.paths as p; print('from', p.__file__)"}
    for old, new in edits.items():
        assert old in snippet, f"README's library snippet changed: {old!r} is no longer in it (update this test)"
        snippet = snippet.replace(old, new)
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = _run_installed(installed_copy, [sys.executable, "-c", snippet], cwd=work)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.split(" ", 1)[0] in
                 ("table", "counts", "from"))
    assert lines["from"].startswith(str(installed_copy))  # the installed copy ran, not this checkout's code
    ood = load_pairs(split="ood")
    sample = pair_frame(sample_pairs(ood, 40), {q.qid: q for q in load_questions(rule="all")})
    assert int(lines["table"]) == len(ood)
    divergent = int(sample.divergent.sum())
    assert eval(lines["counts"]) == {"all": 40, "consensus": 40 - divergent, "divergent": divergent}
    assert 0 < divergent < 40
    assert not (work / "data").exists()  # nothing written beside it but the response cache


@pytest.mark.slow
def test_the_installed_copy_runs_in_a_checkout_and_refuses_to_write_its_shipped_tables(installed_copy, tiny_model,
                                                                                       tmp_path):
    """The check that refuses another checkout's editable install lets an installed copy run anywhere, here from
    this checkout's folder; its command reads the shipped pairs by default; the runner, which needs a checkout,
    says so."""
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "subgroup_values.pipeline.cli"]
    r = _run_installed(installed_copy, [*cli, "evaluate", "--model", str(tiny_model), "--limit", "6", "--n-boot",
                                        "20", "--cache", "", "--out", str(out), "--quiet"], cwd=REPO_ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["questions"] == 1 and 39 <= m["pairs"] <= 48  # --limit 6: one whole question, every subgroup of it
    # it read the table the installed copy ships, named relative to the installed package (where re-scoring looks)
    assert m["data"]["pairs_file"].startswith("_aggregates/") and str(REPO_ROOT) not in m["data"]["pairs_file"]
    r = _run_installed(installed_copy, [sys.executable, "-m", "subgroup_values.pipeline.runner",
                                        "notebooks/03_evaluate.ipynb", "--profile", "smoke"], cwd=REPO_ROOT)
    assert r.returncode != 0 and "needs a checkout of the project" in r.stderr and "installed copy" in r.stderr
    code = ("import pandas as pd; from subgroup_values.survey.dataset import Dataset, save_dataset\n"
            "e = pd.DataFrame()\ntry:\n    save_dataset(Dataset(e, e, e, {}))\n"
            "except ValueError as exc:\n    print(exc)")
    shipped = installed_copy / "subgroup_values" / "_aggregates"
    before = {p: p.stat().st_mtime_ns for p in shipped.rglob("*.csv")}
    r = _run_installed(installed_copy, [sys.executable, "-c", code], cwd=tmp_path)
    assert r.returncode == 0 and "holds the aggregates it ships, which are not rewritten" in r.stdout, r.stderr
    assert {p: p.stat().st_mtime_ns for p in shipped.rglob("*.csv")} == before


def test_an_editable_install_of_another_checkout_is_refused_and_an_installed_copy_is_not(tmp_path, monkeypatch):
    from subgroup_values.core.paths import check_own_checkout

    monkeypatch.delenv("SUBGROUP_VALUES_ANY_CHECKOUT", raising=False)
    other = tmp_path / "other"
    (other / "src" / "subgroup_values").mkdir(parents=True)
    (other / "pyproject.toml").write_text("[project]\nname = 'subgroup-values'\n")
    with pytest.raises(SystemExit, match="belongs to the checkout"):
        check_own_checkout(cwd=other, prefix=str(REPO_ROOT / ".venv"), installed=False)
    with pytest.raises(SystemExit, match="belongs to the checkout"):
        check_own_checkout(cwd=tmp_path, prefix=str(other / ".venv"), installed=False)
    check_own_checkout(cwd=other, prefix=str(other / ".venv"), installed=True)


# ---- committed CSVs are written deterministically: a rerun that changes nothing leaves git status clean ----------

def test_csv_text_rounds_floats_to_fixed_digits_and_keeps_the_rest():
    import pandas as pd

    from subgroup_values.core.provenance import csv_float, csv_text

    frame = pd.DataFrame({"a": [1.0, 0.1 + 0.2, float("nan"), 1 / 3], "b": [1, 2, 3, 4], "c": ["x", "y", None, "z"]})
    assert csv_text(frame) == "a,b,c\n1.0,1,x\n0.3,2,y\n,3,\n0.333333333333,4,z\n"
    assert csv_float(0.077283) == "0.077283" and csv_float(-0.0) == "-0.0" and csv_float(1e-17) == "1e-17"
    assert csv_text(frame.set_index("c"), index=True).startswith("c,a,b\nx,1.0,1\n")


def test_the_same_table_from_two_computations_is_the_same_file(tmp_path):
    """Sums of the same numbers in two orders differ in their last bits; the two files are byte-identical, and
    rewriting a file with the other computation leaves it untouched, also where the two straddle a rounding
    boundary of the declared precision."""
    import numpy as np
    import pandas as pd

    from subgroup_values.core.provenance import csv_float, write_csv

    values = np.random.default_rng(0).random((300, 9))
    forward, backward = values.sum(axis=1), values[:, ::-1].sum(axis=1)
    assert (forward != backward).any()  # the two computations do differ, in the last bits
    a = pd.DataFrame({"qid": [f"Q{i}" for i in range(300)], "mean": forward / 9, "n": 9})
    b = a.assign(mean=backward / 9)
    assert write_csv(a, tmp_path / "a.csv") and write_csv(b, tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()

    x = 0.1234567890125  # and its neighbour: the 12-digit texts differ, the numbers do not (to 1e-9)
    y = np.nextafter(x, 1.0)
    assert csv_float(x) != csv_float(y)
    path = tmp_path / "t.csv"
    write_csv(a.assign(mean=x), path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    assert write_csv(a.assign(mean=y), path) is False
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_a_real_change_is_written(tmp_path):
    import pandas as pd

    from subgroup_values.core.provenance import write_csv

    path = tmp_path / "t.csv"
    frame = pd.DataFrame({"metric": ["accuracy", "nmae"], "estimate": [0.25, 0.5], "n": [10, 10]})
    assert write_csv(frame, path)
    for changed in (frame.assign(estimate=[0.25, 0.500001]), frame.assign(n=[10, 11]),
                    frame.assign(metric=["accuracy", "tv"]), frame.assign(estimate=[0.25, float("nan")]),
                    frame.iloc[:1], frame.assign(extra=1)):
        old = path.read_bytes()
        assert write_csv(changed, path) and path.read_bytes() != old
    assert not list(tmp_path.glob(".*tmp"))  # written through a temporary file, none left behind


#: Writers of CSVs that are not committed and need their exact bytes: the fold dataset (build/disjoint/folds/, whose
#: SHA-256 the fold runs' records carry: reformatting its floats would change the identity of committed runs).
PENDING = {"src/subgroup_values/analysis/folds.py"}


def test_every_csv_writer_goes_through_write_csv():
    found = {}
    for rel in _tracked("src", "scripts", "notebooks", "benchmarks"):
        if rel.endswith((".py", ".ipynb")) and rel != "src/subgroup_values/core/provenance.py":
            n = (REPO_ROOT / rel).read_text().count(".to_csv(")
            if n:
                found[rel] = n
    assert set(found) <= PENDING, f"write these CSVs with subgroup_values.core.provenance.write_csv: {found}"


@pytest.mark.parametrize(("on_project_machine", "expected"), [(False, "0"), (True, "1")])
def test_a_notebook_opened_directly_is_offline_only_on_the_project_machines(on_project_machine, expected,
                                                                           monkeypatch):
    """Binder and Colab open a notebook without make: its setup() goes online there (a hub id in notebook 3
    downloads), offline only where the project machines have no network."""
    from subgroup_values.pipeline import launch

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(paths, "project_machine", lambda root=None: on_project_machine)
    monkeypatch.chdir(REPO_ROOT)
    launch.setup()
    assert os.environ["HF_HUB_OFFLINE"] == expected and os.environ["HF_DATASETS_OFFLINE"] == expected
